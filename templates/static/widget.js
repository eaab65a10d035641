// Kefu web chat: the visitor's page (/widget/chat?key=…), framed by the
// loader (/widget.js) or opened as a plain URL by mobile sites and apps.
// Plain DOM, no framework; message text goes in the page with textContent
// only. The visitor API it talks to: docs/widget.md.
'use strict';
(function () {
  // Every string of the page, Chinese and English side by side.
  const STRINGS = {
    handoff: ['转人工', 'Talk to a person'],
    leave: ['留言', 'Leave a message'],
    agent_typing: ['{name} 正在输入…', '{name} is typing…'],
    score_1: ['非常满意', 'Very satisfied'],
    score_2: ['满意', 'Satisfied'],
    score_3: ['一般', 'Neutral'],
    score_4: ['不满意', 'Dissatisfied'],
    score_5: ['非常不满意', 'Very dissatisfied'],
    leave_title: ['现在没有客服在线', 'Nobody is available right now'],
    leave_intro: ['请留下您的联系方式和问题，我们上班后会尽快联系您。', 'Leave your details and your question: we will get back to you as soon as we are in.'],
    leave_name: ['称呼', 'Name'],
    leave_phone: ['手机号', 'Phone'],
    leave_message: ['留言内容', 'Your message'],
    leave_required: ['（必填）', ' (required)'],
    leave_missing: ['请填写：{fields}', 'Please fill in: {fields}'],
    leave_submit: ['提交留言', 'Send'],
    leave_cancel: ['取消', 'Cancel'],
    leave_done: ['留言已收到，我们会尽快联系您', 'Thank you: we will get back to you soon'],
    messages: ['聊天记录', 'Conversation'],
    composer_label: ['输入消息', 'Your message'],
    composer_placeholder: ['请输入您的问题…', 'Type your message…'],
    send: ['发送', 'Send'],
    empty: ['您好，请问有什么可以帮您？', 'Hello! How can we help you?'],
    status_bot: ['智能助手为您服务', 'Our assistant is here to help'],
    status_queued: ['排队中，前面还有 {n} 位', 'In the queue: {n} ahead of you'],
    status_queued_next: ['排队中，马上为您接通', 'In the queue: you are next'],
    status_assigned: ['客服 {name} 为您服务', '{name} is here to help'],
    status_assigned_anon: ['客服为您服务', 'An agent is here to help'],
    status_closed: ['会话已结束', 'This conversation has ended'],
    you: ['我', 'You'],
    agent: ['客服', 'Agent'],
    robot: ['智能助手', 'Assistant'],
    sending: ['发送中…', 'Sending…'],
    failed: ['发送失败', 'Not sent'],
    retry: ['重试', 'Retry'],
    too_long: ['最多 {max} 字', 'At most {max} characters'],
    rate_limited: ['发送太频繁，请 {n} 秒后再试', 'Too many messages: try again in {n} s'],
    network: ['网络不给力，请检查网络连接', 'Network problem: check your connection'],
    reconnecting: ['连接已断开，正在重新连接…', 'Connection lost: reconnecting…'],
    session_failed: ['暂时连不上客服，正在重试…', 'Cannot reach us just now: retrying…'],
    session_refused: ['无法开始会话：{error}', 'Cannot start the chat: {error}'],
    signed_out: ['会话已失效，请刷新页面', 'This chat has expired: please reload the page'],
    today: ['今天', 'Today'],
    yesterday: ['昨天', 'Yesterday'],
    type_image: ['[图片]', '[Picture]'],
    type_voice: ['[语音]', '[Voice message]'],
    type_video: ['[视频]', '[Video]'],
    type_file: ['[文件]', '[File]'],
    type_other: ['[消息]', '[Message]'],
    attach: ['发送图片或文件', 'Send a picture or a file'],
    record: ['录制语音', 'Record a voice message'],
    record_stop: ['停止并发送', 'Stop and send'],
    record_cancel: ['取消', 'Cancel'],
    recording: ['录音中', 'Recording'],
    record_denied: ['无法使用麦克风：请在浏览器中允许本页面使用麦克风', 'The microphone is blocked: allow this page to use it in your browser'],
    record_no_mic: ['没有找到麦克风', 'No microphone was found'],
    record_failed: ['录音失败：{error}', 'Could not record: {error}'],
    record_short: ['录音时间太短', 'Too short to send'],
    uploading: ['上传中 {n}%', 'Uploading {n}%'],
    media_loading: ['加载中…', 'Loading…'],
    media_failed: ['加载失败', 'Could not load it'],
    reload: ['重新加载', 'Reload'],
    open_image: ['查看大图', 'View the picture'],
    close_image: ['关闭', 'Close'],
    drop: ['松开即可发送', 'Drop to send'],
    read: ['已读', 'Read'],
  };

  const body = document.body;
  const KEY = body.dataset.key;
  const EN = body.dataset.lang === 'en';
  const LOCALE = EN ? 'en' : 'zh-CN';
  const MAX = Number(body.dataset.max) || 2000;
  const FRAMED = window.parent !== window;
  // Parents whose messages (the signed-in user's token) are believed.
  const ORIGINS = (body.dataset.origins || '').split(' ').filter(Boolean).concat(location.origin);
  const T = {};
  for (const k of Object.keys(STRINGS)) T[k] = STRINGS[k][EN ? 1 : 0];
  const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));
  const $ = (id) => document.getElementById(id);

  const S = {
    visitor: load('kefu.visitor.' + KEY),
    login: null,
    entries: [], // messages shown, stored and pending
    byId: new Map(),
    byClient: new Map(),
    nodes: new Map(), // entry key or day -> {node, sig}
    lastId: 0,
    lastStaffId: 0,
    seq: 0,
    conv: undefined,
    ready: null, // the first session, a promise
    renewing: null,
    renewedAt: 0,
    dead: false,
    // The loader says whether its panel is open; a page not framed by it is
    // seen whenever it is on screen.
    embedded: FRAMED,
    panelOpen: false,
    parentOrigin: null,
    onInit: null,
    readId: Number(load('kefu.read.' + KEY)) || 0,
    unread: -1,
    title: document.title,
    connNotice: '',
    errNotice: '',
    errTimer: null,
    // Nobody on duty: the header's button opens the leave-a-message form.
    onDuty: true,
    required: ['phone', 'message'],
    // Read marks: how far the serving agent has read (the visitor's
    // messages up to it show 已读), and how far this page has said the
    // visitor has seen.
    agentRead: 0,
    readSent: 0,
    readPosting: false,
    readRetryAt: 0,
  };

  // Pictures, recordings, videos and files, by media id: fetched with the
  // token header (never in a URL) and shown from a blob: URL.
  const MEDIA = new Map(); // media id -> {state: 'loading'|'ready'|'failed', url}
  const MEDIA_NODES = new Map(); // entry key -> {url, node}: players kept across renders

  function load(k) {
    try { return localStorage.getItem(k); } catch (_) { return null; }
  }
  function save(k, v) {
    try { localStorage.setItem(k, v); } catch (_) { /* storage off: this tab only */ }
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Up to 20 % either way, so that many pages cut off together do not all
  // come back in the same moment.
  const jitter = (ms) => Math.round(ms * (0.8 + Math.random() * 0.4));

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // Plain http on another host is not a secure context: no randomUUID.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // ---- The parent (the loader), when framed.

  function toParent(msg) {
    if (FRAMED && S.parentOrigin) window.parent.postMessage(msg, S.parentOrigin);
  }

  window.addEventListener('message', (ev) => {
    if (!FRAMED || ev.source !== window.parent || !ORIGINS.includes(ev.origin)) return;
    const d = ev.data;
    if (!d || typeof d !== 'object' || typeof d.kefu !== 'string') return;
    if (d.kefu === 'init') {
      const first = !S.parentOrigin;
      S.parentOrigin = ev.origin;
      S.embedded = true;
      S.panelOpen = !!d.open;
      const login = typeof d.login === 'string' && d.login ? d.login : null;
      if (S.onInit) S.onInit(login);
      else if (login && login !== S.login) {
        // Came after the page had started as a guest: sign the visitor in.
        S.login = login;
        if (S.ready) S.ready.then(() => openSession()).catch(() => {});
      }
      if (first) S.unread = -1;
      seen();
    } else if (d.kefu === 'open' || d.kefu === 'close') {
      S.panelOpen = d.kefu === 'open';
      if (S.panelOpen) updateComposer();
      // Not on phones: the keyboard would cover what was said.
      if (S.panelOpen && !window.matchMedia('(max-width: 480px)').matches) $('text').focus({ preventScroll: true });
      seen();
    }
  });

  // The signed-in user's token, if the loader has one: asked for at once,
  // waited for briefly.
  function waitForParent(ms) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (login) => {
        if (done) return;
        done = true;
        S.onInit = null;
        resolve(login);
      };
      S.onInit = finish;
      setTimeout(() => {
        if (!S.parentOrigin) S.embedded = false; // not our loader
        finish(null);
      }, ms);
      window.parent.postMessage({ kefu: 'ready' }, '*'); // carries nothing
    });
  }

  // ---- Unread: agents' and the robot's messages not yet seen.

  function visible() {
    return document.visibilityState === 'visible' && (!S.embedded || S.panelOpen);
  }

  // Tells Kefu what the visitor has seen (for the agent's 已读): on the
  // socket, or by POST on the long-poll fallback; only when it grows.
  function reportRead() {
    if (S.dead || !S.visitor || !visible() || $('messages').hidden) return;
    if (S.lastStaffId === 0 || S.lastStaffId <= S.readSent) return;
    const upTo = S.lastId;
    if (RT.ws && RT.ws.readyState === 1) {
      RT.ws.send(JSON.stringify({ type: 'read', up_to: upTo }));
      S.readSent = upTo;
    } else if (RT.mode === 'poll' && !S.readPosting && Date.now() >= S.readRetryAt) {
      const before = S.readSent;
      S.readSent = upTo;
      S.readPosting = true;
      api('POST', '/widget/api/read', { up_to: upTo })
        .catch(() => {
          // Said again later, not at every render.
          if (S.readSent === upTo) S.readSent = before;
          S.readRetryAt = Date.now() + 30000;
        })
        .finally(() => { S.readPosting = false; });
    }
  }

  function seen() {
    reportRead();
    if (visible() && S.lastStaffId > S.readId) {
      S.readId = S.lastStaffId;
      save('kefu.read.' + KEY, String(S.readId));
    }
    let n = 0;
    for (const e of S.entries) if (e.id && e.from !== 'customer' && e.id > S.readId) n++;
    if (n === S.unread) return;
    S.unread = n;
    toParent({ kefu: 'unread', count: n });
    document.title = (n > 0 ? '(' + n + ') ' : '') + S.title;
  }
  document.addEventListener('visibilitychange', () => {
    seen();
    if (document.visibilityState === 'visible') RT.wake();
  });

  // ---- The API.

  function failure(status, text, retryAfter) {
    const e = new Error(text);
    e.status = status;
    e.retryAfter = retryAfter;
    return e;
  }

  async function answer(r) {
    const text = await r.text().catch(() => '');
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (r.ok) return data;
    const wait = Number(r.headers.get('Retry-After')) || 0;
    if (r.status === 429) throw failure(429, fill(T.rate_limited, { n: Math.max(1, Math.ceil(wait)) }), wait);
    throw failure(r.status, (data && (data.message || data.error)) || r.statusText || 'HTTP ' + r.status);
  }

  async function request(method, path, payload, signal, auth) {
    const headers = {};
    if (auth) headers.Authorization = 'Visitor ' + S.visitor;
    let bodyText;
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      bodyText = JSON.stringify(payload);
    }
    try {
      return await fetch(path, { method, headers, body: bodyText, signal, credentials: 'omit', cache: 'no-store' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw failure(0, T.network);
    }
  }

  // A visitor call (`call` makes the request with the current token and
  // gives its Response); a 401 starts a new session (once a minute at most)
  // and the call is made again with the new token.
  async function authed(call) {
    if (S.ready) await S.ready;
    let r = await call();
    if (r.status === 401 && !S.dead) {
      if (!S.renewing && Date.now() - S.renewedAt > 60000) {
        S.renewedAt = Date.now();
        S.renewing = openSession().finally(() => { S.renewing = null; });
      }
      if (S.renewing) {
        await S.renewing;
        r = await call();
      }
      if (r.status === 401) stop(T.signed_out);
    }
    return answer(r);
  }

  function api(method, path, payload, signal) {
    return authed(() => request(method, path, payload, signal, true));
  }

  // A file as the body of POST /widget/api/media, with upload progress
  // (which fetch does not give); answered as a Response, like fetch.
  function uploadRequest(e, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/widget/api/media?client_id=' + encodeURIComponent(e.client_id) +
        '&name=' + encodeURIComponent(e.name || 'file'));
      xhr.setRequestHeader('Authorization', 'Visitor ' + S.visitor);
      xhr.setRequestHeader('Content-Type', e.file.type || 'application/octet-stream');
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable && ev.total > 0) onProgress(Math.floor((100 * ev.loaded) / ev.total));
      };
      xhr.onload = () => {
        const headers = new Headers();
        const wait = xhr.getResponseHeader('Retry-After');
        if (wait) headers.set('Retry-After', wait);
        const text = [204, 205, 304].includes(xhr.status) ? null : xhr.responseText;
        let r;
        try {
          r = new Response(text, { status: xhr.status, statusText: xhr.statusText, headers });
        } catch (_) {
          r = new Response(text, { status: xhr.status, headers });
        }
        resolve(r);
      };
      xhr.onerror = xhr.onabort = xhr.ontimeout = () => reject(failure(0, T.network));
      xhr.send(e.file);
    });
  }

  // Starts or resumes the visitor; renders what it has said so far.
  async function openSession() {
    const payload = { key: KEY };
    if (S.visitor) payload.visitor = S.visitor;
    if (S.login) payload.login = S.login;
    const d = await answer(await request('POST', '/widget/api/session', payload, undefined, false));
    if (d.visitor !== S.visitor) {
      // Someone new (the old token was unknown): nothing of theirs to show.
      const pending = S.entries.filter((e) => !e.id);
      S.entries = pending;
      S.byId.clear();
      S.byClient = new Map(pending.map((e) => [e.client_id, e]));
      S.lastId = 0;
      S.lastStaffId = 0;
      S.agentRead = 0;
      S.readSent = 0;
      dropMedia();
      S.visitor = d.visitor;
      save('kefu.visitor.' + KEY, d.visitor);
      RT.restart();
    }
    if (d.site && d.site.name) {
      $('site-name').textContent = d.site.name;
      S.title = d.site.name;
      S.unread = -1;
    }
    for (const m of d.messages || []) merge(m);
    S.onDuty = d.on_duty !== false;
    if (d.leave_message && Array.isArray(d.leave_message.required)) S.required = d.leave_message.required;
    markRequired();
    setConversation(d.conversation);
    render(true);
    if (!S.onDuty && !(S.conv && (S.conv.state === 'queued' || S.conv.state === 'assigned'))) showLeave(true);
    return d;
  }

  // The first session; tried again with backoff until Kefu answers.
  async function start() {
    let delay = 1000;
    for (;;) {
      try {
        await openSession();
        break;
      } catch (e) {
        if (e.status >= 400 && e.status < 500 && e.status !== 429) {
          stop(fill(T.session_refused, { error: e.message }));
          throw e;
        }
        notice(e.status === 429 ? e.message : T.session_failed);
        await sleep(e.retryAfter ? e.retryAfter * 1000 : jitter(delay));
        delay = Math.min(delay * 2, 30000);
      }
    }
    notice('');
    body.dataset.ready = 'true';
  }

  // Nothing more to do on this page: says why, stops sending and following.
  function stop(text) {
    S.dead = true;
    RT.close();
    notice(text);
    updateComposer();
    body.dataset.ready = 'dead';
  }

  // ---- Messages.

  function merge(m) {
    if (!m || typeof m.id !== 'number') return false;
    let e = S.byId.get(m.id);
    const isNew = !e;
    if (!e && m.client_id) e = S.byClient.get(m.client_id);
    if (!e) {
      e = { key: m.client_id ? 'c:' + m.client_id : 'm:' + m.id, seq: S.seq++ };
      S.entries.push(e);
    }
    const media = m.media && typeof m.media === 'object' && typeof m.media.id === 'number' ? m.media : null;
    if (e.localUrl) {
      // Our own upload, stored: its file is what the store has.
      if (media && !MEDIA.has(media.id)) MEDIA.set(media.id, { state: 'ready', url: e.localUrl });
      else URL.revokeObjectURL(e.localUrl);
      e.localUrl = null;
    }
    Object.assign(e, {
      id: m.id,
      from: m.from,
      agent_name: m.agent_name,
      msg_type: m.msg_type,
      text: m.text,
      media,
      client_id: m.client_id,
      sent_at: m.sent_at,
      survey: !!m.survey,
      pending: null,
      error: null,
      file: null,
      progress: null,
    });
    S.byId.set(m.id, e);
    if (m.client_id) S.byClient.set(m.client_id, e);
    if (m.id > S.lastId) S.lastId = m.id;
    if (m.from !== 'customer' && m.id > S.lastStaffId) S.lastStaffId = m.id;
    return isNew;
  }

  function send(text) {
    const e = {
      key: '',
      seq: S.seq++,
      id: null,
      from: 'customer',
      msg_type: 'text',
      text,
      client_id: newId(),
      sent_at: new Date().toISOString(),
      pending: 'sending',
      error: null,
    };
    e.key = 'c:' + e.client_id;
    S.entries.push(e);
    S.byClient.set(e.client_id, e);
    render(true);
    post(e);
  }

  // A picture, recording, video or file, as its own message: shown at once
  // (from the file itself) with the upload's progress.
  function sendFile(file, name) {
    if (S.dead || !file) return;
    const type = file.type || '';
    const kind = /^image\//.test(type) ? 'image' : /^audio\//.test(type) ? 'voice' : /^video\//.test(type) ? 'video' : 'file';
    const e = {
      key: '',
      seq: S.seq++,
      id: null,
      from: 'customer',
      msg_type: kind,
      text: kind === 'file' ? name : null,
      media: null,
      client_id: newId(),
      sent_at: new Date().toISOString(),
      pending: 'sending',
      error: null,
      file,
      name: name || 'file',
      localUrl: kind === 'file' ? null : URL.createObjectURL(file),
      progress: 0,
    };
    e.key = 'c:' + e.client_id;
    S.entries.push(e);
    S.byClient.set(e.client_id, e);
    render(true);
    post(e);
  }

  async function post(e) {
    e.pending = 'sending';
    e.error = null;
    if (e.file) e.progress = 0;
    render(false);
    try {
      const d = e.file
        ? await authed(() => uploadRequest(e, (n) => {
          if (e.pending !== 'sending' || n === e.progress) return;
          e.progress = n;
          render(false);
        }))
        : await api('POST', '/widget/api/messages', { client_id: e.client_id, text: e.text });
      merge(d && d.message);
      if (d && 'conversation' in d) setConversation(d.conversation);
    } catch (err) {
      if (e.id) return; // stored after all (the socket said so)
      e.pending = 'failed';
      e.error = err.message;
    }
    render(false);
  }

  function typeText(e) {
    if (e.text) return e.text;
    const t = { image: T.type_image, voice: T.type_voice, video: T.type_video, shortvideo: T.type_video, file: T.type_file };
    return t[e.msg_type] || T.type_other;
  }

  function dayOf(iso) {
    const d = new Date(iso);
    return d.getFullYear() + '-' + (d.getMonth() + 1) + '-' + d.getDate();
  }

  function dayLabel(iso) {
    const d = new Date(iso);
    const now = new Date();
    const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    if (dayOf(iso) === dayOf(now)) return T.today;
    if (dayOf(iso) === dayOf(yesterday)) return T.yesterday;
    const opts = { month: 'long', day: 'numeric', weekday: 'short' };
    if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
    return d.toLocaleDateString(LOCALE, opts);
  }

  function cached(key, sig, build) {
    let c = S.nodes.get(key);
    if (c && c.sig === sig) return c.node;
    if (!c) {
      c = { node: null, sig: '' };
      S.nodes.set(key, c);
    }
    c.node = build(c.node);
    c.sig = sig;
    return c.node;
  }

  function dayNode(iso, nth) {
    const label = dayLabel(iso);
    return cached('day:' + dayOf(iso) + '#' + nth, label, (n) => {
      n = n || el('div', 'day');
      n.setAttribute('role', 'separator');
      n.replaceChildren(el('span', null, label));
      return n;
    });
  }

  // A survey still to answer: nothing written after it.
  function answerable(e) {
    return e.survey && !S.entries.some((x) => x.from === 'customer' && (!x.id || x.id > e.id));
  }

  // ---- Media: fetched with the token header, shown from blob: URLs.

  const MEDIA_KINDS = ['image', 'voice', 'video', 'shortvideo', 'file'];

  function isMedia(e) {
    return MEDIA_KINDS.includes(e.msg_type) && !!(e.media || e.localUrl);
  }

  // Only Kefu's own media URLs get the token.
  function mediaPath(media) {
    return typeof media.url === 'string' && /^\/widget\/api\/media\/\d+$/.test(media.url)
      ? media.url
      : '/widget/api/media/' + media.id;
  }

  // The entry's file, if there: {state, url}. Files (downloads) are fetched
  // when asked for, the rest as soon as shown.
  function mediaOf(e, fetchNow) {
    if (e.localUrl) return { state: 'ready', url: e.localUrl };
    if (!e.media) return null;
    let slot = MEDIA.get(e.media.id);
    if (!slot && fetchNow) {
      slot = { state: 'loading', url: null };
      MEDIA.set(e.media.id, slot);
      fetchMedia(e.media, slot);
    }
    return slot || { state: 'idle', url: null };
  }

  async function fetchMedia(media, slot) {
    try {
      if (S.ready) await S.ready;
      const r = await fetch(mediaPath(media), {
        headers: { Authorization: 'Visitor ' + S.visitor },
        credentials: 'omit',
      });
      if (!r.ok) throw failure(r.status, 'HTTP ' + r.status);
      const blob = await r.blob();
      if (MEDIA.get(media.id) !== slot) return; // forgotten meanwhile (a new visitor)
      slot.url = URL.createObjectURL(blob);
      slot.state = 'ready';
    } catch (_) {
      if (MEDIA.get(media.id) !== slot) return;
      slot.state = 'failed';
    }
    render(false);
  }

  // A new visitor: nothing of the last one's is kept.
  function dropMedia() {
    for (const slot of MEDIA.values()) if (slot.url) URL.revokeObjectURL(slot.url);
    MEDIA.clear();
    MEDIA_NODES.clear();
  }

  // A player or picture, made once per message and file: a render while
  // it plays leaves it playing.
  function player(e, url, make) {
    const c = MEDIA_NODES.get(e.key);
    if (c && c.url === url) return c.node;
    const node = make();
    MEDIA_NODES.set(e.key, { url, node });
    return node;
  }

  function mediaNode(e) {
    const kind = e.msg_type;
    const slot = mediaOf(e, kind !== 'file');
    const box = el('div', 'bubble media ' + kind);
    box.dataset.test = 'message-text';
    if (kind === 'file') {
      // A download link with the file's name; fetched on the first click.
      const a = el('a', 'file', e.text || T.type_file);
      a.dataset.test = 'message-file';
      a.download = e.text || 'file';
      a.href = slot && slot.url ? slot.url : '#';
      if (!slot || !slot.url) {
        a.addEventListener('click', (ev) => {
          if (a.getAttribute('href') !== '#') return;
          ev.preventDefault();
          if (!e.media) return;
          const s2 = mediaOf(e, false);
          if (s2.state === 'loading') return;
          const got = { state: 'loading', url: null };
          MEDIA.set(e.media.id, got);
          fetchMedia(e.media, got).then(() => {
            if (got.url) {
              a.href = got.url;
              a.click();
            }
          });
        });
      }
      box.append(a);
      if (slot && slot.state === 'failed') box.append(failedNote(e));
      return box;
    }
    if (!slot || slot.state === 'loading' || slot.state === 'idle') {
      box.append(el('span', 'media-wait', typeText(e) + ' ' + T.media_loading));
      return box;
    }
    if (slot.state === 'failed') {
      box.append(el('span', 'media-wait', typeText(e)), failedNote(e));
      return box;
    }
    const url = slot.url;
    if (kind === 'image') {
      box.append(player(e, url, () => {
        const b = el('button', 'thumb');
        b.type = 'button';
        b.setAttribute('aria-label', T.open_image);
        const img = el('img');
        img.alt = T.type_image;
        img.dataset.test = 'message-image';
        img.src = url;
        img.addEventListener('error', () => img.replaceWith(el('span', 'media-wait', T.type_image)));
        b.append(img);
        b.addEventListener('click', () => viewImage(url));
        return b;
      }));
    } else if (kind === 'voice') {
      box.append(player(e, url, () => {
        const a = el('audio');
        a.controls = true;
        a.preload = 'metadata';
        a.dataset.test = 'message-voice';
        a.src = url;
        a.setAttribute('aria-label', T.type_voice);
        return a;
      }));
    } else {
      box.append(player(e, url, () => {
        const v = el('video');
        v.controls = true;
        v.preload = 'metadata';
        v.playsInline = true;
        v.dataset.test = 'message-video';
        v.src = url;
        v.setAttribute('aria-label', T.type_video);
        return v;
      }));
    }
    return box;
  }

  function failedNote(e) {
    const note = el('span', 'media-failed', T.media_failed);
    const again = el('button', null, T.reload);
    again.type = 'button';
    again.addEventListener('click', () => {
      if (!e.media) return;
      MEDIA.delete(e.media.id);
      render(false);
    });
    note.append(again);
    return note;
  }

  // A picture at full size, over the conversation; a click or Escape closes it.
  function viewImage(url) {
    closeViewer();
    const v = el('div', 'viewer');
    v.id = 'viewer';
    v.dataset.test = 'viewer';
    v.setAttribute('role', 'dialog');
    v.setAttribute('aria-modal', 'true');
    v.setAttribute('aria-label', T.open_image);
    const img = el('img');
    img.src = url;
    img.alt = T.type_image;
    const close = el('button', 'viewer-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', T.close_image);
    v.append(img, close);
    v.addEventListener('click', closeViewer);
    document.body.append(v);
    close.focus();
  }

  function closeViewer() {
    const v = $('viewer');
    if (!v) return false;
    v.remove();
    return true;
  }

  function messageNode(e) {
    const open = answerable(e);
    const media = isMedia(e);
    const slot = media ? mediaOf(e, e.msg_type !== 'file') : null;
    const readHere = !!e.id && e.id === S.readMark;
    const sig = [e.id, e.pending, e.error, e.text, e.agent_name, e.from, open, e.msg_type,
      media, slot ? slot.state + (slot.url || '') : '', e.pending ? e.progress : '', readHere].join('\u0000');
    return cached(e.key, sig, (n) => {
      const me = e.from === 'customer';
      n = n || el('div');
      n.className = 'msg ' + (me ? 'me' : 'them ' + (e.from === 'robot' ? 'robot' : 'agent')) + (e.pending ? ' ' + e.pending : '');
      n.dataset.test = 'message';
      n.dataset.from = e.from;
      if (e.id) n.dataset.id = e.id;
      if (e.client_id) n.dataset.clientId = e.client_id;
      if (e.pending) n.dataset.state = e.pending;
      else delete n.dataset.state;
      const meta = el('div', 'meta');
      const who = me ? T.you : e.from === 'robot' ? T.robot : e.agent_name || T.agent;
      meta.append(el('span', me ? 'who sr-only' : 'who', who));
      meta.append(' ');
      const time = el('time', null, new Date(e.sent_at).toLocaleTimeString(LOCALE, { hour: '2-digit', minute: '2-digit' }));
      time.dateTime = e.sent_at;
      meta.append(time);
      let bubble;
      if (media) {
        bubble = mediaNode(e);
      } else {
        bubble = el('div', 'bubble', typeText(e));
        bubble.dataset.test = 'message-text';
      }
      n.replaceChildren(meta, bubble);
      if (open) {
        // One button per score; each sends its digit, as WeChat customers type it.
        const row = el('div', 'scores');
        row.dataset.test = 'survey';
        for (let score = 1; score <= 5; score++) {
          const b = el('button', 'score', T['score_' + score]);
          b.type = 'button';
          b.dataset.test = 'survey-score';
          b.dataset.score = String(score);
          b.addEventListener('click', () => send(String(score)));
          row.append(b);
        }
        n.append(row);
      }
      if (e.pending === 'sending') {
        const note = el('div', 'note', e.file ? fill(T.uploading, { n: e.progress || 0 }) : T.sending);
        if (e.file) note.dataset.test = 'progress';
        n.append(note);
      }
      if (readHere) {
        const r = el('div', 'note read', T.read);
        r.dataset.test = 'read';
        n.append(r);
      }
      if (e.pending === 'failed') {
        const note = el('div', 'note', T.failed + (e.error ? '：' + e.error : ''));
        note.dataset.test = 'message-error';
        const retry = el('button', null, T.retry);
        retry.type = 'button';
        retry.dataset.test = 'retry';
        retry.addEventListener('click', () => post(e));
        note.append(retry);
        n.append(note);
      }
      return n;
    });
  }

  // Puts the messages in order, reusing their nodes: a node already in
  // place stays, so the log announces only what is new.
  function render(toBottom) {
    const box = $('messages');
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    S.entries.sort((a, b) => (a.id || Infinity) - (b.id || Infinity) || a.seq - b.seq);
    // 已读 under the last of the visitor's messages the agent has read.
    S.readMark = 0;
    for (const e of S.entries) {
      if (e.id && e.from === 'customer' && e.id <= S.agentRead && e.id > S.readMark) S.readMark = e.id;
    }
    const want = [];
    const days = new Map(); // a day may come back (clocks that disagree): its own separator
    let day = null;
    for (const e of S.entries) {
      if (dayOf(e.sent_at) !== day) {
        day = dayOf(e.sent_at);
        const nth = days.get(day) || 0;
        days.set(day, nth + 1);
        want.push(dayNode(e.sent_at, nth));
      }
      want.push(messageNode(e));
    }
    if (want.length === 0) want.push(cached('empty', T.empty, (n) => n || el('p', 'empty', T.empty)));
    want.forEach((n, i) => {
      const at = box.children[i];
      if (at !== n) box.insertBefore(n, at || null);
    });
    while (box.children.length > want.length) box.lastElementChild.remove();
    if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
    seen();
  }

  // ---- The conversation's state: the status line and 转人工.

  function statusText(c) {
    if (!c) return T.status_bot; // the robot answers first
    switch (c.state) {
      case 'bot': return T.status_bot;
      case 'queued':
        return c.queue_position > 0 ? fill(T.status_queued, { n: c.queue_position }) : T.status_queued_next;
      case 'assigned': return c.agent_name ? fill(T.status_assigned, { name: c.agent_name }) : T.status_assigned_anon;
      case 'closed': return T.status_closed;
      default: return '';
    }
  }

  // The agent has read up to `n` (absent before the server says so).
  function agentRead(n) {
    if (typeof n !== 'number' || !(n > S.agentRead)) return;
    S.agentRead = n;
    render(false);
  }

  function setConversation(c) {
    S.conv = c || null;
    if (S.conv) agentRead(S.conv.agent_read_up_to);
    const line = $('status');
    line.textContent = statusText(S.conv);
    line.dataset.state = S.conv ? S.conv.state : 'none';
    const waiting = !!S.conv && (S.conv.state === 'queued' || S.conv.state === 'assigned');
    const b = $('handoff');
    b.hidden = waiting;
    b.textContent = S.onDuty ? T.handoff : T.leave;
    b.dataset.mode = S.onDuty ? 'handoff' : 'leave';
  }

  // ---- The leave-a-message form (nobody on duty).

  const LEAVE_FIELDS = ['name', 'phone', 'message'];

  function markRequired() {
    for (const f of LEAVE_FIELDS) {
      const label = $('leave-' + f).closest('label').firstElementChild;
      label.textContent = T['leave_' + f] + (S.required.includes(f) ? T.leave_required : '');
      $('leave-' + f).required = S.required.includes(f);
    }
  }

  function showLeave(on) {
    $('leave').hidden = !on;
    $('messages').hidden = on;
    $('leave-error').hidden = true;
    if (on) $(S.required.includes('name') ? 'leave-name' : 'leave-phone').focus();
  }

  async function leave(ev) {
    ev.preventDefault();
    const form = {};
    for (const f of LEAVE_FIELDS) form[f] = $('leave-' + f).value.trim();
    const missing = S.required.filter((f) => !form[f]).map((f) => T['leave_' + f]);
    const err = $('leave-error');
    if (missing.length) {
      err.textContent = fill(T.leave_missing, { fields: missing.join('、') });
      err.hidden = false;
      return;
    }
    const b = $('leave-submit');
    b.disabled = true;
    try {
      const d = await api('POST', '/widget/api/leave-message', Object.assign({ client_id: newId() }, form));
      if (d && d.message) merge(d.message);
      if (d && 'conversation' in d) setConversation(d.conversation);
      for (const f of LEAVE_FIELDS) $('leave-' + f).value = '';
      showLeave(false);
      render(true);
      flash(T.leave_done);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      b.disabled = false;
    }
  }

  // ---- Notices: the connection's (until it is back) under an error's
  // (for a few seconds).

  function notice(text) {
    S.connNotice = text || '';
    showBanner();
  }
  function flash(text) {
    S.errNotice = text;
    clearTimeout(S.errTimer);
    S.errTimer = setTimeout(() => { S.errNotice = ''; showBanner(); }, 8000);
    showBanner();
  }
  function showBanner() {
    const b = $('banner');
    const text = S.errNotice || S.connNotice;
    b.textContent = text;
    b.className = S.errNotice || S.dead ? 'banner error' : 'banner';
    b.hidden = !text;
  }

  // ---- Realtime: the socket, resumed after the last message seen; if it
  // cannot open twice running, long polls, trying the socket again every
  // few minutes.

  const RT = {
    ws: null,
    failures: 0,
    backoff: 1000,
    timer: null,
    polling: false,
    pollAbort: null,
    probeTimer: null,
    mode: 'ws',

    connect() {
      clearTimeout(RT.timer);
      RT.timer = null;
      if (S.dead || !S.visitor || RT.ws) return;
      const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
        '/widget/api/ws?visitor=' + encodeURIComponent(S.visitor) + '&after=' + S.lastId;
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (_) {
        RT.failed(false);
        return;
      }
      RT.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        RT.failures = 0;
        RT.backoff = 1000;
        RT.mode = 'ws';
        RT.stopPolling();
        notice('');
        body.dataset.conn = 'ws';
        reportRead();
      };
      ws.onmessage = (ev) => {
        if (RT.ws === ws) RT.frame(ev.data);
      };
      ws.onclose = () => {
        if (RT.ws !== ws) return; // replaced on purpose
        RT.ws = null;
        RT.failed(opened);
      };
    },

    failed(opened) {
      if (S.dead) return;
      if (!opened) RT.failures++;
      if (RT.mode === 'poll') {
        RT.probe(); // the socket still does not open: poll on
        return;
      }
      if (RT.failures >= 2) {
        RT.poll();
        return;
      }
      body.dataset.conn = 'down';
      if (opened) notice(T.reconnecting);
      RT.timer = setTimeout(RT.connect, jitter(RT.backoff));
      RT.backoff = Math.min(RT.backoff * 2, 30000);
    },

    frame(raw) {
      let f;
      try { f = JSON.parse(raw); } catch (_) { return; }
      if (!f || typeof f !== 'object') return;
      if (f.type === 'message') {
        merge(f.message);
        render(f.message && f.message.from === 'customer');
      } else if (f.type === 'conversation') {
        setConversation(f.conversation);
      } else if (f.type === 'read') {
        agentRead(f.up_to);
      } else if (f.type === 'typing') {
        // The agent is typing: said in the status line for a few seconds.
        const line = $('status');
        line.textContent = fill(T.agent_typing, { name: f.agent_name || T.agent });
        line.dataset.typing = 'true';
        clearTimeout(S.typingTimer);
        S.typingTimer = setTimeout(() => {
          delete line.dataset.typing;
          line.textContent = statusText(S.conv);
        }, 4000);
      }
    },

    async poll() {
      RT.mode = 'poll';
      body.dataset.conn = 'poll';
      RT.probe();
      reportRead();
      if (RT.polling) return;
      RT.polling = true;
      let backoff = 1000;
      while (RT.mode === 'poll' && !S.dead) {
        const ctl = new AbortController();
        RT.pollAbort = ctl;
        // Kefu answers within 25 s; a proxy that holds on longer is cut.
        const cut = setTimeout(() => ctl.abort(), 40000);
        const visitor = S.visitor;
        try {
          const d = await api('GET', '/widget/api/poll?after=' + S.lastId, undefined, ctl.signal);
          backoff = 1000;
          notice('');
          if (d && S.visitor === visitor) {
            let mine = false;
            for (const m of d.messages || []) {
              merge(m);
              mine = mine || m.from === 'customer';
            }
            if ('conversation' in d) setConversation(d.conversation);
            render(mine);
          }
        } catch (e) {
          if (RT.mode !== 'poll' || S.dead) break;
          if (e.name !== 'AbortError') {
            notice(T.reconnecting);
            await sleep(jitter(backoff));
            backoff = Math.min(backoff * 2, 30000);
          }
        } finally {
          clearTimeout(cut);
        }
      }
      RT.polling = false;
    },

    stopPolling() {
      clearTimeout(RT.probeTimer);
      RT.probeTimer = null;
      if (RT.pollAbort) RT.pollAbort.abort();
      RT.pollAbort = null;
    },

    probe() {
      clearTimeout(RT.probeTimer);
      RT.probeTimer = setTimeout(RT.connect, jitter(180000));
    },

    // Back on screen or online: try now rather than at the end of a backoff.
    wake() {
      if (S.dead || !S.visitor || RT.ws || RT.mode !== 'ws' || !RT.timer) return;
      RT.backoff = 1000;
      RT.connect();
    },

    // A new visitor token: the socket or the poll follows the new visitor.
    restart() {
      if (RT.pollAbort) RT.pollAbort.abort(); // the loop asks again, as the new visitor
      if (!RT.ws) return;
      const ws = RT.ws;
      RT.ws = null;
      ws.close();
      RT.connect();
    },

    close() {
      clearTimeout(RT.timer);
      RT.stopPolling();
      RT.mode = 'closed';
      if (RT.ws) {
        const ws = RT.ws;
        RT.ws = null;
        ws.close();
      }
    },
  };
  window.addEventListener('online', () => RT.wake());

  // ---- The composer.

  function chars(s) {
    return Array.from(s).length; // code points, as Kefu counts
  }

  function updateComposer() {
    const t = $('text');
    const n = chars(t.value);
    const c = $('counter');
    c.textContent = n + ' / ' + MAX;
    c.classList.toggle('over', n > MAX);
    c.title = n > MAX ? fill(T.too_long, { max: MAX }) : '';
    t.setAttribute('aria-invalid', n > MAX ? 'true' : 'false');
    $('send').disabled = S.dead || t.value.trim() === '' || n > MAX;
    $('attach').disabled = S.dead;
    $('record').disabled = S.dead;
    if (S.dead && REC.cur) stopRecording(false);
    t.style.height = 'auto';
    // Not laid out (a frame loaded hidden): the style's height until shown.
    t.style.height = t.scrollHeight > 0 ? Math.min(t.scrollHeight + 2, 128) + 'px' : '';
  }

  function submit() {
    updateComposer();
    if ($('send').disabled) return;
    const t = $('text');
    const text = t.value.trim();
    t.value = '';
    updateComposer();
    t.focus();
    send(text);
  }

  async function handoff() {
    const b = $('handoff');
    if (!S.onDuty) {
      showLeave($('leave').hidden);
      return;
    }
    b.disabled = true;
    try {
      const d = await api('POST', '/widget/api/handoff', {});
      if (d && 'conversation' in d) setConversation(d.conversation);
    } catch (e) {
      flash(e.message);
    } finally {
      b.disabled = false;
    }
  }

  // ---- Attachments: the clip button, pasted pictures, files dropped on
  // the panel. Each file is its own message.

  function sendFiles(list) {
    for (const f of Array.from(list || [])) sendFile(f, f.name);
  }

  function pastedImage(f, i) {
    if (f.name && f.name !== 'image.png') return f.name;
    const ext = (f.type.split('/')[1] || 'png').replace(/[^a-z0-9]/gi, '') || 'png';
    return 'image' + (i ? '-' + (i + 1) : '') + '.' + ext;
  }

  function onPaste(ev) {
    const items = ev.clipboardData ? Array.from(ev.clipboardData.items || []) : [];
    const files = items
      .filter((it) => it.kind === 'file' && /^image\//.test(it.type))
      .map((it) => it.getAsFile())
      .filter(Boolean);
    if (!files.length) return; // text: pasted as usual
    ev.preventDefault();
    files.forEach((f, i) => sendFile(f, pastedImage(f, i)));
  }

  let dragDepth = 0;
  function carriesFiles(ev) {
    return !!ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes('Files');
  }
  function dropping(on) {
    $('app').classList.toggle('dropping', on);
  }

  // ---- Voice messages: tap to start, tap to stop and send (at most 60 s).

  const REC_MAX_MS = 60000;
  const REC_FORMATS = [
    ['audio/webm;codecs=opus', 'voice.webm'],
    ['audio/ogg;codecs=opus', 'voice.ogg'],
    ['audio/mp4', 'voice.m4a'],
  ];
  // The recording under way, if any: {state: 'starting'|'recording', …}.
  const REC = { cur: null };

  function recordFormat() {
    if (typeof window.MediaRecorder !== 'function' || typeof MediaRecorder.isTypeSupported !== 'function') return null;
    const f = REC_FORMATS.find(([type]) => MediaRecorder.isTypeSupported(type));
    return f ? { type: f[0], name: f[1] } : null;
  }

  // Where the browser can record here: MediaRecorder, a format Kefu takes,
  // and a microphone the page may ask for (a frame needs allow="microphone").
  function canRecord() {
    if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== 'function') return false;
    if (!recordFormat()) return false;
    const policy = document.permissionsPolicy || document.featurePolicy;
    try {
      if (policy && typeof policy.allowsFeature === 'function' && !policy.allowsFeature('microphone')) return false;
    } catch (_) { /* not told: try */ }
    return true;
  }

  function clock(ms) {
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  function showRecording() {
    const cur = REC.cur;
    const on = !!cur && cur.state === 'recording';
    $('composer').classList.toggle('recording', on);
    $('recording').hidden = !on;
    const b = $('record');
    b.classList.toggle('on', on);
    b.setAttribute('aria-pressed', String(on));
    const label = on ? T.record_stop : T.record;
    b.setAttribute('aria-label', label);
    b.title = label;
    if (on) $('record-time').textContent = clock(Date.now() - cur.started) + ' / ' + clock(REC_MAX_MS);
  }

  function recordError(err) {
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return T.record_denied;
    if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') return T.record_no_mic;
    return fill(T.record_failed, { error: (err && (err.message || name)) || '?' });
  }

  function recording() {
    return !!REC.cur && REC.cur.state === 'recording';
  }

  async function startRecording() {
    if (REC.cur || S.dead) return;
    const fmt = recordFormat();
    if (!fmt) return;
    const cur = { state: 'starting', fmt, chunks: [], cancelled: false };
    REC.cur = cur;
    try {
      cur.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      cur.rec = new MediaRecorder(cur.stream, { mimeType: fmt.type });
    } catch (err) {
      if (cur.stream) for (const t of cur.stream.getTracks()) t.stop();
      REC.cur = null;
      flash(recordError(err));
      return;
    }
    if (REC.cur !== cur) { // cancelled while the browser asked
      for (const t of cur.stream.getTracks()) t.stop();
      return;
    }
    cur.rec.ondataavailable = (ev) => {
      if (ev.data && ev.data.size) cur.chunks.push(ev.data);
    };
    cur.rec.onstop = () => finishRecording(cur);
    cur.rec.onerror = (ev) => {
      flash(recordError(ev.error));
      stopRecording(false);
    };
    cur.rec.start(1000);
    cur.state = 'recording';
    cur.started = Date.now();
    cur.timer = setInterval(() => {
      if (Date.now() - cur.started >= REC_MAX_MS) stopRecording(true);
      else showRecording();
    }, 250);
    showRecording();
  }

  // Stops; `send` false throws the recording away.
  function stopRecording(send) {
    const cur = REC.cur;
    if (!cur) return;
    REC.cur = null;
    cur.cancelled = !send;
    cur.ended = Date.now();
    clearInterval(cur.timer);
    showRecording();
    if (cur.state !== 'recording') return; // still asking: dropped when it answers
    try {
      cur.rec.stop(); // finishRecording follows, with the last data
    } catch (_) {
      finishRecording(cur);
    }
  }

  function finishRecording(cur) {
    if (cur.done) return;
    cur.done = true;
    for (const t of cur.stream.getTracks()) t.stop();
    if (cur.cancelled) return;
    const blob = new Blob(cur.chunks, { type: cur.fmt.type });
    if (cur.ended - cur.started < 800 || blob.size === 0) {
      flash(T.record_short);
      return;
    }
    sendFile(blob, cur.fmt.name);
  }

  // ---- Start.

  function applyStrings() {
    for (const n of document.querySelectorAll('[data-t]')) n.textContent = T[n.dataset.t];
    for (const n of document.querySelectorAll('[data-t-aria]')) n.setAttribute('aria-label', T[n.dataset.tAria]);
    for (const n of document.querySelectorAll('[data-t-placeholder]')) n.placeholder = T[n.dataset.tPlaceholder];
    for (const n of document.querySelectorAll('[data-t-title]')) n.title = T[n.dataset.tTitle];
  }

  applyStrings();
  if (FRAMED) body.classList.add('framed');
  setConversation(null);
  render(true);
  updateComposer();
  $('text').addEventListener('input', updateComposer);
  // The agent sees that the visitor is typing (at most every 3 s; the
  // server passes it on only while an agent serves them).
  $('text').addEventListener('input', () => {
    const now = Date.now();
    if (!RT.ws || RT.ws.readyState !== 1 || now - (S.typedAt || 0) < 3000) return;
    S.typedAt = now;
    RT.ws.send(JSON.stringify({ type: 'typing' }));
  });
  $('text').addEventListener('keydown', (ev) => {
    // Enter sends; Shift+Enter is a new line; Enter that picks an IME
    // candidate (Chinese input) does neither.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      submit();
    }
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape') return;
    if (closeViewer()) return;
    if (REC.cur) {
      stopRecording(false);
      return;
    }
    if (S.embedded) toParent({ kefu: 'close' });
  });
  // Attachments.
  $('attach').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', () => {
    const f = $('file');
    sendFiles(f.files);
    f.value = ''; // the same file again is a new message
  });
  $('text').addEventListener('paste', onPaste);
  const app = $('app');
  app.dataset.drop = T.drop;
  app.addEventListener('dragenter', (ev) => {
    if (!carriesFiles(ev) || S.dead) return;
    ev.preventDefault();
    dragDepth++;
    dropping(true);
  });
  app.addEventListener('dragover', (ev) => {
    if (!carriesFiles(ev) || S.dead) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
  });
  app.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropping(false);
  });
  app.addEventListener('drop', (ev) => {
    dragDepth = 0;
    dropping(false);
    if (!carriesFiles(ev) || S.dead) return;
    ev.preventDefault();
    sendFiles(ev.dataTransfer.files);
  });
  // Voice messages, where the browser records.
  $('record').hidden = !canRecord();
  $('record').addEventListener('click', () => {
    if (recording()) stopRecording(true);
    else if (!REC.cur) startRecording();
  });
  $('record-cancel').addEventListener('click', () => stopRecording(false));
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit();
  });
  $('handoff').addEventListener('click', handoff);
  $('leave').addEventListener('submit', leave);
  $('leave-cancel').addEventListener('click', () => showLeave(false));

  // For tests and the curious: cut the socket (it reconnects and resumes).
  window.kefuChat = { cut: () => RT.ws && RT.ws.close() };

  S.ready = (FRAMED ? waitForParent(300) : Promise.resolve(null)).then((login) => {
    if (login) S.login = login;
    return start();
  });
  S.ready.then(() => RT.connect(), () => {});
})();
