// The embedding snippet served at /connect.js: `Edgegate.connect({url})` opens the hosted page in
// a popup within the click (a blocked popup falls back to a full-page redirect) and resolves with
// the page's result message; `onSuccess`, `onExit` and `onEvent` callbacks follow Plaid Link's
// model (payloads in docs/connect.md). Plain ES5 so any partner page can load it as is.
export const CONNECT_SCRIPT = `/* Edgegate connect snippet: https://github.com/edgegate (docs/connect.md) */
(function (global) {
  'use strict';
  var MESSAGE_TYPE = 'edgegate:connect';
  var STEP_TYPE = 'edgegate:connect:event';

  /** Calls a partner callback; an error in it must not break the flow. */
  function call(callback) {
    if (typeof callback !== 'function') return;
    var args = Array.prototype.slice.call(arguments, 1);
    try { callback.apply(null, args); } catch (e) { setTimeout(function () { throw e; }); }
  }

  function fail(code, message, state) {
    var error = new Error(message);
    error.code = code;
    if (state !== undefined) error.state = state;
    return error;
  }

  function withState(url, state) {
    var parsed = new URL(url, global.location.href);
    if (state) parsed.searchParams.set('state', state);
    return parsed;
  }

  /**
   * options.url: the redirect_url of a connect session, or a function returning a promise of it
   *   (then the popup opens blank at once, inside the click, and is sent there when it resolves).
   * options.state: echoed back with the result (check it). options.width / options.height.
   * Resolves with {type, code, state}; rejects with error.code 'access_denied', 'closed' or
   * 'redirected' (the popup was blocked and the whole page went to Edgegate instead).
   * options.onSuccess({code, state}), options.onExit({error_code, state}) and
   * options.onEvent(eventName, metadata) are called as well (OPEN, SELECT_TYPE, SUBMIT, ERROR,
   * SUCCESS, EXIT).
   */
  function connect(options) {
    options = options || {};
    function exit(code, state) {
      call(options.onEvent, 'EXIT', { error_code: code, state: state });
      call(options.onExit, { error_code: code, state: state });
    }
    var width = options.width || 520;
    var height = options.height || 720;
    var left = Math.max(0, (global.screenX || 0) + ((global.outerWidth || width) - width) / 2);
    var top = Math.max(0, (global.screenY || 0) + ((global.outerHeight || height) - height) / 2);
    var features = 'popup=yes,width=' + width + ',height=' + height + ',left=' + left + ',top=' + top;
    var direct = typeof options.url === 'string';
    // Nothing is awaited before window.open: Safari only allows popups opened within the click.
    // A fresh window name per call: no other frame can find this popup by name and navigate it.
    var name = 'edgegate-connect-' + Math.random().toString(36).slice(2);
    var popup = global.open(direct ? withState(options.url, options.state).toString() : 'about:blank', name, features);
    var urlPromise = direct ? Promise.resolve(options.url) : Promise.resolve().then(options.url);

    return urlPromise.then(function (url) {
      var target = withState(url, options.state);
      if (!popup || popup.closed) {
        exit('redirected', options.state);
        global.location.assign(target.toString());
        throw fail('redirected', 'The popup was blocked: continuing in this window.');
      }
      if (!direct) popup.location.replace(target.toString());
      call(options.onEvent, 'OPEN', { state: options.state });
      return new Promise(function (resolve, reject) {
        var timer;
        function cleanup() {
          global.removeEventListener('message', onMessage);
          clearInterval(timer);
        }
        // The connect session this popup shows: the path segment after /connect/.
        var session = target.pathname.split('/')[2] || '';
        function fromPopup(event) {
          if (event.origin !== target.origin) return false;
          if (event.source === popup) return true;
          // A message posted just before the popup navigated can arrive with no source
          // (Chromium): it is still this popup's when it names this popup's connect session.
          return event.source === null && session !== '' && !!event.data && event.data.connect === session;
        }
        function onMessage(event) {
          if (!fromPopup(event)) return;
          var data = event.data;
          if (data && data.type === STEP_TYPE && typeof data.event === 'string') {
            call(options.onEvent, data.event, data.metadata || {});
            return;
          }
          if (!data || data.type !== MESSAGE_TYPE) return;
          if (options.state && data.state !== options.state) return;
          cleanup();
          try { popup.close(); } catch (e) { /* already closed */ }
          if (data.error) {
            exit(data.error, data.state);
            reject(fail(data.error, 'The user cancelled the connection.', data.state));
          } else {
            call(options.onEvent, 'SUCCESS', { state: data.state });
            call(options.onSuccess, { code: data.code, state: data.state });
            resolve({ type: data.type, code: data.code, state: data.state });
          }
        }
        global.addEventListener('message', onMessage);
        timer = setInterval(function () {
          if (popup.closed) {
            cleanup();
            exit('closed', options.state);
            reject(fail('closed', 'The connect window was closed before it finished.'));
          }
        }, 400);
      });
    }, function (error) {
      if (popup && !popup.closed) popup.close();
      throw error;
    });
  }

  global.Edgegate = global.Edgegate || {};
  global.Edgegate.connect = connect;
})(window);
`;
