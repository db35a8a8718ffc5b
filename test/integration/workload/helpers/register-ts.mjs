// `node --import <this file> child.ts`: runs TypeScript children of integration tests.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
