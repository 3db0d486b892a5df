// Types of bundle.mjs for the broker and the tests, which load it from TypeScript.
import type { BuildOptions } from 'esbuild';
export declare const BUNDLE_OPTIONS: BuildOptions & { entryPoints: string[] };
export declare const BUNDLE_FILE: string;
