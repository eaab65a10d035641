// Kefu console pages' shared helpers: DOM elements whose text is set with
// textContent only, and JSON calls that carry the CSRF token.
'use strict';
window.Kefu = (function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // A JSON call; signed out, the page goes to the sign-in page (and back).
  async function api(method, path, body) {
    const opts = { method, headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname);
      throw new Error('signed out');
    }
    let data = null;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!r.ok) {
      const err = new Error((data && data.message) || r.statusText);
      err.status = r.status;
      throw err;
    }
    return data;
  }

  return { el, api };
})();
