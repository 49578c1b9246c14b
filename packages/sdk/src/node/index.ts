// @edgegate/sdk/node: sign-in for desktop and CLI partner apps, which needs Node (a local HTTP
// server, a browser to launch). Everything else is in the browser-safe `@edgegate/sdk`.
export {
  LOOPBACK_CALLBACK_PATH,
  loopbackLogin,
  type LoopbackLoginOptions,
} from './loopback-login.ts';
export { deviceLogin, type DeviceLoginOptions, type DevicePrompt } from './device-login.ts';
export { openSystemBrowser } from './open-browser.ts';
