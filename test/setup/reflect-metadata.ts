// @peculiar/x509 (used only by tests to mint certificates) needs the Reflect metadata polyfill
// loaded before it. It mutates the global Reflect, so it lives here and never in src/.
import 'reflect-metadata';
