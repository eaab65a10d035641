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
  };

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

  function seen() {
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
    throw failure(r.status, (data && data.error) || r.statusText || 'HTTP ' + r.status);
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

  // A visitor call; a 401 starts a new session (once a minute at most) and
  // the call is made again with the new token.
  async function api(method, path, payload, signal) {
    if (S.ready) await S.ready;
    let r = await request(method, path, payload, signal, true);
    if (r.status === 401 && !S.dead) {
      if (!S.renewing && Date.now() - S.renewedAt > 60000) {
        S.renewedAt = Date.now();
        S.renewing = openSession().finally(() => { S.renewing = null; });
      }
      if (S.renewing) {
        await S.renewing;
        r = await request(method, path, payload, signal, true);
      }
      if (r.status === 401) stop(T.signed_out);
    }
    return answer(r);
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
    Object.assign(e, {
      id: m.id,
      from: m.from,
      agent_name: m.agent_name,
      msg_type: m.msg_type,
      text: m.text,
      client_id: m.client_id,
      sent_at: m.sent_at,
      survey: !!m.survey,
      pending: null,
      error: null,
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

  async function post(e) {
    e.pending = 'sending';
    e.error = null;
    render(false);
    try {
      const d = await api('POST', '/widget/api/messages', { client_id: e.client_id, text: e.text });
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

  function messageNode(e) {
    const open = answerable(e);
    const sig = [e.id, e.pending, e.error, e.text, e.agent_name, e.from, open].join('\u0000');
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
      const bubble = el('div', 'bubble', typeText(e));
      bubble.dataset.test = 'message-text';
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
      if (e.pending === 'sending') n.append(el('div', 'note', T.sending));
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

  function setConversation(c) {
    S.conv = c || null;
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
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight + 2, 128) + 'px';
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

  // ---- Start.

  function applyStrings() {
    for (const n of document.querySelectorAll('[data-t]')) n.textContent = T[n.dataset.t];
    for (const n of document.querySelectorAll('[data-t-aria]')) n.setAttribute('aria-label', T[n.dataset.tAria]);
    for (const n of document.querySelectorAll('[data-t-placeholder]')) n.placeholder = T[n.dataset.tPlaceholder];
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
    if (ev.key === 'Escape' && S.embedded) toParent({ kefu: 'close' });
  });
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
