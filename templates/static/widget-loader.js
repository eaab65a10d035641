// Kefu web chat loader (served as /widget.js). A site adds
//
//   <script src="https://kefu.example.com/widget.js" data-key="pk_…"
//           data-user-token="(optional signed token)" async></script>
//
// (and data-lang="en" for English) and gets a chat bubble, bottom right,
// that opens Kefu's chat page in a panel: 380×600, full screen on phones.
// The signed-in user's token goes to the frame by postMessage, only to
// Kefu's origin (where this script came from), never in the frame's URL.
// The frame says how many replies are unread; the bubble shows it while
// the panel is closed. The one global: window.KefuWidget {open(), close()}.
(function () {
  'use strict';
  if (window.KefuWidget) return;
  const script = document.currentScript || document.querySelector('script[data-key][src*="/widget.js"]');
  if (!script || !script.dataset.key) {
    if (window.console) console.warn('Kefu widget: the <script> tag needs data-key="<the site\'s public key>"');
    return;
  }
  const ORIGIN = new URL(script.src, location.href).origin;
  const KEY = script.dataset.key;
  const TOKEN = script.dataset.userToken || null;
  const EN = (script.dataset.lang || '').toLowerCase() === 'en';
  // The loader's few strings, Chinese and English side by side.
  const STRINGS = {
    open: ['在线客服', 'Chat with us'],
    close: ['关闭在线客服', 'Close the chat'],
    with_unread: ['{label}（{n} 条未读消息）', '{label} ({n} unread)'],
  };
  const T = {};
  for (const k of Object.keys(STRINGS)) T[k] = STRINGS[k][EN ? 1 : 0];
  const SMALL = window.matchMedia('(max-width: 479.98px)');
  const REMEMBER = 'kefu.widget.' + KEY; // this browser has chatted here before
  const ACCENT = '#067d40';
  const Z = '2147483000';
  const SVG = 'http://www.w3.org/2000/svg';
  const CHAT_ICON = 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z';
  const CLOSE_ICON = 'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z';

  let root = null;
  let bubble;
  let badge;
  let panel;
  let closer;
  let frame = null;
  let frameReady = false; // the chat page has said it listens
  let isOpen = false;
  let unread = 0;

  // Inline, important: the host page's own rules for buttons and frames
  // must not reshape the widget. (Styles set from script pass any CSP.)
  function css(el, props) {
    for (const k of Object.keys(props)) el.style.setProperty(k, props[k], 'important');
  }
  const RESET = {
    'box-sizing': 'border-box', margin: '0', padding: '0', border: '0', 'min-width': '0', 'min-height': '0',
    'max-width': 'none', 'max-height': 'none', float: 'none', transform: 'none', 'text-transform': 'none',
    'letter-spacing': 'normal', 'line-height': 'normal', 'font-family': 'system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif',
  };

  function icon(d, size) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', size);
    svg.setAttribute('height', size);
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    path.setAttribute('fill', 'currentColor');
    svg.append(path);
    css(svg, { display: 'block', 'pointer-events': 'none' });
    return svg;
  }

  function build() {
    if (root) return;
    root = document.createElement('div');
    root.id = 'kefu-widget';
    css(root, Object.assign({}, RESET, { position: 'static' }));

    bubble = document.createElement('button');
    bubble.type = 'button';
    bubble.id = 'kefu-widget-bubble';
    bubble.setAttribute('aria-haspopup', 'dialog');
    bubble.setAttribute('aria-expanded', 'false');
    bubble.setAttribute('aria-controls', 'kefu-widget-panel');
    css(bubble, Object.assign({}, RESET, {
      position: 'fixed', right: '20px', bottom: 'calc(20px + env(safe-area-inset-bottom, 0px))',
      width: '56px', height: '56px', 'border-radius': '50%', background: ACCENT, color: '#fff',
      cursor: 'pointer', display: 'flex', 'align-items': 'center', 'justify-content': 'center',
      'box-shadow': '0 4px 14px rgba(0, 0, 0, .25)', 'z-index': Z,
    }));
    bubble.append(icon(CHAT_ICON, 28));
    badge = document.createElement('span');
    badge.setAttribute('aria-hidden', 'true');
    css(badge, Object.assign({}, RESET, {
      position: 'absolute', top: '-2px', right: '-2px', 'min-width': '20px', height: '20px', padding: '0 6px',
      'border-radius': '10px', background: '#e5262b', color: '#fff', 'font-size': '12px', 'font-weight': '700',
      'line-height': '20px', 'text-align': 'center', 'box-shadow': '0 0 0 2px #fff', display: 'none',
    }));
    bubble.append(badge);
    bubble.addEventListener('click', () => (isOpen ? close() : open()));

    panel = document.createElement('div');
    panel.id = 'kefu-widget-panel';
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', T.open);
    css(panel, Object.assign({}, RESET, {
      position: 'fixed', 'z-index': Z, overflow: 'hidden', background: '#f4f5f7', display: 'none',
      'box-shadow': '0 8px 32px rgba(0, 0, 0, .22)',
    }));
    closer = document.createElement('button');
    closer.type = 'button';
    closer.id = 'kefu-widget-close';
    closer.setAttribute('aria-label', T.close);
    closer.title = T.close;
    css(closer, Object.assign({}, RESET, {
      position: 'absolute', right: '10px', width: '36px', height: '36px', 'border-radius': '50%',
      background: 'transparent', color: '#646a73', cursor: 'pointer', display: 'flex',
      'align-items': 'center', 'justify-content': 'center', 'z-index': '1',
    }));
    closer.append(icon(CLOSE_ICON, 22));
    closer.addEventListener('click', close);
    panel.append(closer);
    panel.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') close();
    });

    root.append(panel, bubble);
    document.body.append(root);
    if (SMALL.addEventListener) SMALL.addEventListener('change', layout);
    else if (SMALL.addListener) SMALL.addListener(layout);
    layout();
  }

  // The chat page, made once and kept (closing only hides it), so that the
  // bubble counts replies while the panel is closed.
  function ensureFrame() {
    if (frame) return;
    frame = document.createElement('iframe');
    frame.id = 'kefu-widget-frame';
    frame.title = T.open;
    frame.src = ORIGIN + '/widget/chat?key=' + encodeURIComponent(KEY) + (EN ? '&lang=en' : '');
    css(frame, Object.assign({}, RESET, { display: 'block', width: '100%', height: '100%', background: '#f4f5f7' }));
    panel.append(frame);
  }

  function tell(msg) {
    if (frameReady && frame.contentWindow) frame.contentWindow.postMessage(msg, ORIGIN);
  }

  // To the frame, once its script has loaded and asked: the signed-in
  // user's token and whether it is on screen.
  function hello() {
    frameReady = true;
    tell({ kefu: 'init', login: TOKEN, open: isOpen });
  }

  window.addEventListener('message', (ev) => {
    if (!frame || ev.source !== frame.contentWindow || ev.origin !== ORIGIN) return;
    const d = ev.data;
    if (!d || typeof d !== 'object') return;
    if (d.kefu === 'ready') hello();
    else if (d.kefu === 'unread') setUnread(Number(d.count) || 0);
    else if (d.kefu === 'close') close();
  });

  function setUnread(n) {
    unread = Math.max(0, Math.floor(n));
    badge.textContent = unread > 99 ? '99+' : String(unread);
    layout();
  }

  function layout() {
    if (!root) return;
    const small = SMALL.matches;
    if (small) {
      css(panel, {
        top: '0', left: '0', right: '0', bottom: '0', width: '100%', height: '100%', 'border-radius': '0',
        padding: 'env(safe-area-inset-top, 0px) env(safe-area-inset-right, 0px) env(safe-area-inset-bottom, 0px) env(safe-area-inset-left, 0px)',
      });
      css(closer, { top: 'calc(10px + env(safe-area-inset-top, 0px))' });
    } else {
      css(panel, {
        top: 'auto', left: 'auto', right: '20px', bottom: 'calc(88px + env(safe-area-inset-bottom, 0px))',
        width: '380px', height: '600px', 'max-width': 'calc(100vw - 40px)', 'max-height': 'calc(100vh - 108px)',
        'border-radius': '12px', padding: '0',
      });
      css(closer, { top: '10px' });
    }
    css(panel, { display: isOpen ? 'block' : 'none' });
    // On a phone the panel covers the bubble; on a desktop the bubble stays
    // and closes it.
    css(bubble, { display: isOpen && small ? 'none' : 'flex' });
    bubble.replaceChild(icon(isOpen ? CLOSE_ICON : CHAT_ICON, isOpen ? 24 : 28), bubble.firstChild);
    bubble.setAttribute('aria-expanded', String(isOpen));
    const label = isOpen ? T.close : T.open;
    bubble.setAttribute('aria-label', !isOpen && unread > 0 ? T.with_unread.replace('{label}', label).replace('{n}', unread) : label);
    css(badge, { display: !isOpen && unread > 0 ? 'block' : 'none' });
  }

  function remember() {
    try { localStorage.setItem(REMEMBER, '1'); } catch (_) { /* storage off */ }
  }
  function remembered() {
    try { return localStorage.getItem(REMEMBER) === '1'; } catch (_) { return false; }
  }

  function open() {
    whenReady(() => {
      build();
      ensureFrame();
      if (isOpen) return;
      isOpen = true;
      remember();
      layout();
      tell({ kefu: 'open' });
      frame.focus();
    });
  }

  function close() {
    whenReady(() => {
      if (!root || !isOpen) return;
      const inside = panel.contains(document.activeElement);
      isOpen = false;
      layout();
      tell({ kefu: 'close' });
      if (inside) bubble.focus();
    });
  }

  function whenReady(fn) {
    if (document.body) fn();
    else document.addEventListener('DOMContentLoaded', fn, { once: true });
  }

  window.KefuWidget = Object.freeze({ open, close });
  whenReady(() => {
    build();
    // Someone who has chatted here before gets the frame at once (hidden):
    // replies that came while they were away show on the bubble.
    if (remembered()) ensureFrame();
  });
})();
