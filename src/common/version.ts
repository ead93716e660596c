/** jaula's version (the CLI's --version, the API's info). */
export const VERSION = '0.1.0';
