/**
 * The e2e tests' static file server is the server's own (signaling-server/http/static-files.ts):
 * COOP/COEP/CORP on every response, streamed files, byte ranges, 403 for `..`. Re-exported here
 * so the tests keep one import path for their support code.
 */
export { startStaticServer, type StaticServer, type StaticServerOptions } from '../../signaling-server/http/static-files.ts';
