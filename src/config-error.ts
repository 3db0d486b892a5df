/** A setting that cannot be taken as given: the CLI prints its message and exits 2. */
export class ConfigError extends Error {}
