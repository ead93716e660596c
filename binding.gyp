{
  "targets": [
    {
      "target_name": "jaula_native",
      "sources": ["native/addon.c", "native/nsops.c", "native/spawn.c", "native/netlink.c"],
      "cflags": [
        "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
        "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=3", "-fstack-protector-strong",
        "-fstack-clash-protection", "-fcf-protection"
      ],
      "ldflags": ["-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"]
    }
  ]
}
