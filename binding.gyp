{
  "targets": [
    {
      "target_name": "jaula_native",
      "sources": ["native/addon.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
