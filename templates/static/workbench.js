// Kefu workbench: the agent's one page. Plain DOM, no framework; every
// customer-provided string is put in the page with textContent only.
'use strict';
(function () {
  const T = JSON.parse(document.getElementById('kefu-strings').textContent);
  const { el, api } = window.Kefu;
  const $ = (id) => document.getElementById(id);
  const state = {
    me: null,
    convs: [],
    selected: null,
    messages: [],
    status: new Map(), // outbound message id -> {status, reason}
    seq: 0,
    epoch: null,
    ws: null,
    welcomed: false,
    backoff: 500,
    tab: Math.random().toString(36).slice(2, 10),
    counter: 0,
  };

  function banner(text, kind) {
    const b = $('banner');
    b.textContent = text || '';
    b.className = text ? 'banner ' + (kind || 'error') : 'banner';
  }

  function channelName(c) {
    return { oa: T.channel_oa, kf: T.channel_kf, wecom_kf: T.channel_kf, web: T.channel_web }[c] || c;
  }

  function since(iso) {
    if (!iso) return '';
    const mins = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    return mins < 1 ? T.just_now : T.waiting_mins.replace('{n}', mins);
  }

  function preview(m) {
    if (!m) return '';
    if (m.msg_type === 'text') return m.content || '';
    return '[' + (T['type_' + m.msg_type] || m.msg_type) + ']';
  }

  function renderList() {
    const ul = $('convs');
    ul.replaceChildren();
    if (state.convs.length === 0) ul.append(el('li', 'empty', T.no_conversations));
    for (const it of state.convs) {
      const c = it.conversation;
      const li = el('li', 'conv' + (state.selected === c.id ? ' selected' : ''));
      li.dataset.id = c.id;
      const top = el('div', 'top');
      top.append(el('span', 'badge ch-' + c.channel, channelName(c.channel)));
      const who = (it.customer && it.customer.name) || T.customer + ' #' + c.customer_id;
      top.append(el('span', 'who', who));
      if (it.unread > 0) top.append(el('span', 'unread', it.unread));
      li.append(top);
      li.append(el('div', 'preview', preview(it.last_message)));
      if (c.awaiting_reply_since) li.append(el('div', 'wait', since(c.awaiting_reply_since)));
      li.addEventListener('click', () => select(c.id));
      ul.append(li);
    }
  }

  function media(m) {
    // A picture being sent shows from the file itself (a data: URL).
    const src = m.preview || '/media/' + m.media_object_id;
    if (m.msg_type === 'image') { const i = el('img'); i.src = src; i.alt = T.type_image; return i; }
    if (!m.media_object_id) return el('span', 'text', '[' + (T['type_' + m.msg_type] || m.msg_type) + ']');
    if (m.msg_type === 'voice') { const a = el('audio'); a.controls = true; a.src = src; return a; }
    if (m.msg_type === 'video' || m.msg_type === 'shortvideo') { const v = el('video'); v.controls = true; v.src = src; return v; }
    const a = el('a', null, T.download); a.href = src; a.download = m.content || ''; return a;
  }

  function statusText(m) {
    const s = state.status.get(m.id) || (m.pending ? { status: m.pending } : null);
    if (!s) return '';
    if (s.status === 'sending' && m.progress !== undefined) return T.uploading.replace('{n}', m.progress);
    if (s.status === 'failed') return T.status_failed + (s.reason ? '：' + s.reason : '');
    return T['status_' + s.status] || s.status;
  }

  function renderMessages() {
    const box = $('messages');
    box.replaceChildren();
    for (const m of state.messages) {
      const kind = m.direction === 'in' ? 'in' : m.direction === 'note' ? 'note' : 'out';
      const row = el('div', 'msg ' + kind);
      row.dataset.id = m.id;
      const who = kind === 'in' ? T.customer : kind === 'note' ? T.note + ' · ' + m.sender : m.sender;
      const meta = el('div', 'meta', who + ' · ' + new Date(m.sent_at).toLocaleTimeString());
      row.append(meta);
      const body = el('div', 'body');
      const hasMedia = m.media_object_id || m.preview || (m.pending && m.msg_type !== 'text');
      if (hasMedia) body.append(media(m));
      if (m.content) body.append(el('span', 'text', m.content));
      else if (!hasMedia) body.append(el('span', 'text', preview(m)));
      row.append(body);
      if (m.direction === 'out') {
        const read = state.customerRead && m.id <= state.customerRead ? ' · ' + T.customer_read : '';
        row.append(el('div', 'status', statusText(m) + read));
      }
      box.append(row);
    }
    box.scrollTop = box.scrollHeight;
  }

  function renderWindow(it) {
    const w = it && it.window;
    const p = $('window');
    if (!w) { p.textContent = ''; p.className = 'window'; return; }
    if (!w.open) {
      p.textContent = T.window_closed + (w.reason ? '（' + w.reason + '）' : '');
      p.className = 'window closed';
      return;
    }
    const left = w.closes_at ? (Date.parse(w.closes_at) - Date.now()) / 3600000 : 48;
    if (left < 2) {
      p.textContent = T.window_closing.replace('{time}', new Date(w.closes_at).toLocaleTimeString());
      p.className = 'window closing';
    } else {
      p.textContent = '';
      p.className = 'window';
    }
  }

  function current() {
    return state.convs.find((it) => it.conversation.id === state.selected) || null;
  }

  async function select(id) {
    state.selected = id;
    banner('');
    const d = await api('GET', '/api/conversations/' + id + '?limit=100');
    if (state.selected !== id) return;
    state.messages = d.messages;
    state.customerRead = d.customer_read_up_to || 0;
    $('chat').hidden = false;
    loadQuick(id).catch(() => {});
    if (String($('panel').dataset.customer) !== String(d.conversation.customer_id) || $('panel').hidden) {
      loadPanel(d.conversation.customer_id).catch(() => {});
    }
    $('chat-title').textContent = (current() && current().customer && current().customer.name) || T.customer + ' #' + d.conversation.customer_id;
    renderMessages();
    renderWindow(current());
    const last = d.messages.length ? d.messages[d.messages.length - 1].id : null;
    const it = current();
    if (it) it.unread = 0;
    renderList();
    if (last) markRead(id, last);
  }

  // The agent has seen a conversation up to a message: only while the page
  // is in view (a web visitor sees it as 已读); else once it comes back.
  function markRead(id, message) {
    if (document.visibilityState !== 'visible') {
      state.unseen = { id, message };
      return;
    }
    state.unseen = null;
    api('POST', '/api/conversations/' + id + '/read', { message_id: message }).catch(() => {});
  }
  document.addEventListener('visibilitychange', () => {
    const u = state.unseen;
    if (u && document.visibilityState === 'visible' && state.selected === u.id) markRead(u.id, u.message);
  });

  // The customer panel: CRM record, channels, trades, conversations and
  // the whole history across channels, paged back on request.
  function row(dl, label, value) {
    dl.append(el('dt', null, label), el('dd', null, value === null || value === undefined || value === '' ? T.none : value));
  }

  async function loadPanel(customerId) {
    const box = $('panel');
    let p;
    try {
      p = await api('GET', '/api/customers/' + customerId);
    } catch (e) {
      box.hidden = true;
      return;
    }
    if (!current() || current().conversation.customer_id !== customerId) return;
    const c = p.customer;
    box.replaceChildren();
    box.dataset.customer = c.id;
    box.append(el('h3', null, c.name || T.customer + ' #' + c.id));
    const dl = el('dl');
    row(dl, T.panel_crm, c.crm_id);
    row(dl, T.panel_phone, c.phone);
    row(dl, T.panel_region, c.region);
    row(dl, T.panel_group, c.city_group && c.city_group.name);
    row(dl, T.panel_agent, c.dedicated_agent && c.dedicated_agent.name);
    const tags = el('dd');
    if (c.tags.length === 0) tags.textContent = T.none;
    for (const t of c.tags) tags.append(el('span', 'tag', t));
    dl.append(el('dt', null, T.panel_tags), tags);
    box.append(dl);
    box.append(el('h4', null, T.panel_channels));
    for (const i of p.identities) {
      const line = el('div', 'small');
      const kind = { oa_openid: T.channel_oa, wecom_external_userid: T.channel_kf, web_visitor: T.channel_web }[i.kind] || i.kind;
      line.textContent = kind + (i.account_name ? ' · ' + i.account_name : '') + ' · ' + i.value;
      box.append(line);
    }
    box.append(el('h4', null, T.panel_trades));
    if (p.vehicles.length === 0) box.append(el('div', 'small', T.none));
    for (const v of p.vehicles) {
      const t = el('div', 'trade');
      t.append(el('div', null, [v.plate, v.model].filter(Boolean).join(' · ')));
      t.append(el('div', 'small', T.trade_payment + '：' + v.payment_status + ' · ' + T.trade_sale + '：' + v.sale_status));
      if (v.order_no) t.append(el('div', 'small', v.order_no));
      box.append(t);
    }
    box.append(el('h4', null, T.panel_conversations));
    for (const cv of p.conversations) {
      const d = el('div', 'pconv small');
      d.textContent = channelName(cv.channel) + ' · ' + new Date(cv.opened_at).toLocaleDateString() + ' · ' + (T['state_' + cv.state] || cv.state) + (cv.agent_name ? ' · ' + cv.agent_name : '');
      box.append(d);
    }
    box.append(el('h4', null, T.panel_history));
    const hist = el('div');
    hist.id = 'history';
    box.append(hist);
    const more = el('button', 'secondary', T.load_earlier);
    more.type = 'button';
    more.id = 'history-more';
    box.append(more);
    let before = null;
    async function page() {
      const q = '/api/customers/' + c.id + '/messages?limit=30' + (before ? '&before=' + before : '');
      const h = await api('GET', q);
      const frag = document.createDocumentFragment();
      for (const m of h.messages) {
        const d = el('div', 'hmsg ' + m.direction);
        d.append(el('div', 'small', channelName(m.channel) + ' · ' + (m.direction === 'in' ? T.customer : m.direction === 'note' ? T.note + ' · ' + m.sender : m.sender) + ' · ' + new Date(m.sent_at).toLocaleString()));
        d.append(el('div', null, m.content || preview(m)));
        frag.append(d);
      }
      hist.prepend(frag);
      if (h.messages.length) before = h.messages[0].id;
      more.hidden = !h.more;
    }
    more.addEventListener('click', () => page().catch((e) => banner(e.message)));
    box.hidden = false;
    await page();
  }

  // Quick replies: shared first, then mine; filled in for this customer.
  async function loadQuick(conversation) {
    const q = await api('GET', '/api/quick-replies?conversation=' + conversation);
    if (state.selected !== conversation) return;
    const sel = $('quick');
    sel.replaceChildren(sel.options[0]);
    state.quick = new Map();
    for (const r of q.replies) {
      const o = el('option', null, (r.shared ? '' : '★ ') + r.title);
      o.value = String(r.id);
      state.quick.set(o.value, r.rendered || r.content);
      sel.append(o);
    }
  }

  function useQuick() {
    const sel = $('quick');
    const text = state.quick && state.quick.get(sel.value);
    if (text) {
      const t = $('text');
      t.value = t.value ? t.value + text : text;
      t.focus();
    }
    sel.value = '';
  }

  async function saveQuick() {
    const content = $('text').value.trim();
    if (!content) return;
    const title = content.replace(/\s+/g, ' ').slice(0, 20);
    try {
      await api('POST', '/api/quick-replies', { title, content });
      banner(T.quick_saved, 'warn');
      if (state.selected) await loadQuick(state.selected);
    } catch (e) { banner(e.message); }
  }

  // Emoji: Unicode, which WeChat and WeCom show as they are.
  const EMOJI = '😊 😄 😂 🙂 😉 😍 🤔 😅 😭 😢 😡 😱 👍 👌 🙏 👏 💪 🤝 👋 ❤️ 🌹 🎉 ✅ ❌ ⭐ 🔥 💰 🚗 📞 📍 ⏰ 📄'.split(' ');

  function insertAtCursor(text) {
    const t = $('text');
    const at = t.selectionStart === undefined ? t.value.length : t.selectionStart;
    const end = t.selectionEnd === undefined ? at : t.selectionEnd;
    t.value = t.value.slice(0, at) + text + t.value.slice(end);
    t.selectionStart = t.selectionEnd = at + text.length;
    t.focus();
  }

  function toggleEmoji() {
    const grid = $('emoji-grid');
    if (!grid.childElementCount) {
      for (const e of EMOJI) {
        const b = el('button', null, e);
        b.type = 'button';
        b.addEventListener('click', () => insertAtCursor(e));
        grid.append(b);
      }
    }
    grid.hidden = !grid.hidden;
    $('emoji').setAttribute('aria-expanded', String(!grid.hidden));
  }

  async function loadWorkbench() {
    const wb = await api('GET', '/api/workbench');
    state.me = wb.me;
    if (wb.me.status) $('status').value = wb.me.status;
    state.convs = wb.conversations;
    renderList();
    if (state.selected && !current()) {
      // No longer mine (transferred, closed).
      $('chat').hidden = true;
      $('panel').hidden = true;
      state.selected = null;
    } else if (state.selected) {
      await select(state.selected);
    }
  }

  async function send() {
    const text = $('text').value;
    if (!text.trim() || !state.selected) return;
    const conv = state.selected;
    const clientId = state.tab + '-' + (++state.counter);
    // An internal note is stored for the staff only, never sent.
    const note = $('note-mode').checked;
    const path = '/api/conversations/' + conv + (note ? '/notes' : '/messages');
    const pending = { id: 'pending-' + clientId, direction: note ? 'note' : 'out', sender: state.me.login, msg_type: 'text', content: text, sent_at: new Date().toISOString(), pending: 'sending' };
    state.messages.push(pending);
    renderMessages();
    $('text').value = '';
    // A retry after a network failure sends the same client id: stored once.
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const r = await api('POST', path, { client_id: clientId, text });
        const i = state.messages.indexOf(pending);
        if (i >= 0 && !state.messages.some((m) => m.id === r.message_id)) {
          state.messages[i] = Object.assign({}, pending, { id: r.message_id, pending: undefined });
          if (!note && !state.status.has(r.message_id)) state.status.set(r.message_id, { status: 'queued' });
        } else if (i >= 0) {
          state.messages.splice(i, 1);
        }
        renderMessages();
        return;
      } catch (e) {
        if (e.status) {
          state.messages.splice(state.messages.indexOf(pending), 1);
          renderMessages();
          $('text').value = text;
          banner(e.message);
          return;
        }
        await new Promise((ok) => setTimeout(ok, 500 * (attempt + 1)));
      }
    }
    pending.pending = 'failed';
    renderMessages();
  }

  // Attachments: the file is the request body (the kind is decided by the
  // server from its content); the same client id on a retry is stored and
  // sent once. Progress while it uploads, the server's reason if refused.
  function post(conv, clientId, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const q = '?client_id=' + encodeURIComponent(clientId) + '&name=' + encodeURIComponent(file.name || '');
      xhr.open('POST', '/api/conversations/' + conv + '/media' + q);
      xhr.setRequestHeader('X-CSRF-Token', document.querySelector('meta[name="csrf-token"]').content);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.floor((100 * e.loaded) / e.total)); };
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { data = null; }
        if (xhr.status === 401) { location.href = '/login?next=/workbench'; return reject(new Error('signed out')); }
        if (xhr.status >= 200 && xhr.status < 300 && data) return resolve(data);
        const err = new Error((data && data.message) || xhr.statusText || String(xhr.status));
        err.status = xhr.status;
        reject(err);
      };
      xhr.onerror = () => reject(new Error('network'));
      xhr.send(file);
    });
  }

  function guessType(file) {
    const t = file.type || '';
    if (/^image\/(jpeg|png|gif)$/.test(t)) return 'image';
    if (/^audio\/(amr|mpeg|mp3)$/.test(t)) return 'voice';
    if (t === 'video/mp4') return 'video';
    return 'file';
  }

  async function sendFile(file) {
    if (!file || !state.selected) return;
    const conv = state.selected;
    const clientId = state.tab + '-' + (++state.counter);
    const kind = guessType(file);
    const pending = { id: 'pending-' + clientId, direction: 'out', sender: state.me.login, msg_type: kind, content: kind === 'file' ? file.name : null, sent_at: new Date().toISOString(), pending: 'sending', progress: 0 };
    state.messages.push(pending);
    renderMessages();
    if (kind === 'image') {
      const reader = new FileReader();
      reader.onload = () => { pending.preview = reader.result; renderMessages(); };
      reader.readAsDataURL(file);
    }
    let shown = -1;
    const progress = (n) => { if (n !== shown) { shown = n; pending.progress = n; renderMessages(); } };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const r = await post(conv, clientId, file, progress);
        const i = state.messages.indexOf(pending);
        const filed = state.messages.findIndex((m) => m.id === r.message_id);
        if (filed >= 0) {
          // Filed over the socket first: that one shows the stored file.
          if (i >= 0) state.messages.splice(i, 1);
        } else if (i >= 0) {
          // Stored: shown from the media store from now on.
          state.messages[i] = Object.assign({}, pending, { id: r.message_id, media_object_id: r.media_object_id, msg_type: r.msg_type, pending: undefined, progress: undefined, preview: undefined });
          if (!state.status.has(r.message_id)) state.status.set(r.message_id, { status: 'queued' });
        }
        renderMessages();
        return;
      } catch (e) {
        if (e.status) {
          state.messages.splice(state.messages.indexOf(pending), 1);
          renderMessages();
          banner(T.upload_refused + '：' + e.message);
          return;
        }
        await new Promise((ok) => setTimeout(ok, 500 * (attempt + 1)));
      }
    }
    pending.pending = 'failed';
    pending.progress = undefined;
    renderMessages();
  }

  function apply(ev) {
    if (ev.type === 'message_filed') {
      const it = state.convs.find((x) => x.conversation.id === ev.conversation);
      if (it) {
        it.last_message = ev.message;
        if (ev.message.direction === 'in') {
          it.conversation.awaiting_reply_since = it.conversation.awaiting_reply_since || ev.message.sent_at;
          if (state.selected !== ev.conversation) it.unread += 1;
        } else if (ev.message.direction === 'out' && ev.message.agent_id) {
          it.conversation.awaiting_reply_since = null;
        }
        renderList();
      }
      if (state.selected === ev.conversation && !state.messages.some((m) => m.id === ev.message.id)) {
        const p = ev.message.msg_type === 'text' ? state.messages.findIndex((m) => m.pending && m.msg_type === 'text' && m.content === ev.message.content) : -1;
        if (p >= 0) state.messages.splice(p, 1);
        state.messages.push(ev.message);
        renderMessages();
        if (ev.message.direction === 'in') markRead(ev.conversation, ev.message.id);
      }
    } else if (ev.type === 'outbound_status') {
      state.status.set(ev.message_id, { status: ev.status, reason: ev.reason });
      if (state.messages.some((m) => m.id === ev.message_id)) renderMessages();
    } else if (ev.type === 'conversation_changed') {
      loadWorkbench().catch((e) => banner(e.message));
    } else if (ev.type === 'agent_presence' && state.me && ev.agent === state.me.id) {
      $('status').value = ev.status;
    } else if (ev.type === 'supervisor_alert') {
      banner(ev.text, 'warn');
    } else if (ev.type === 'read' && !ev.agent && state.selected === ev.conversation) {
      // The web visitor has seen the agent's messages up to this one.
      if (ev.up_to > (state.customerRead || 0)) {
        state.customerRead = ev.up_to;
        renderMessages();
      }
    } else if (ev.type === 'typing' && !ev.agent && state.selected === ev.conversation) {
      // A web visitor is typing: shown for a few seconds.
      const t = $('typing');
      t.textContent = T.customer_typing;
      t.hidden = false;
      clearTimeout(state.typingTimer);
      state.typingTimer = setTimeout(() => { t.hidden = true; }, 4000);
    }
  }

  // The agent's typing reaches a web visitor; sent at most every 3 s.
  function typing() {
    if (!state.selected || !state.ws || state.ws.readyState !== 1) return;
    const it = state.convs.find((x) => x.conversation.id === state.selected);
    if (!it || it.conversation.channel !== 'web') return; // WeChat shows no typing

    const now = Date.now();
    if (state.typedAt && now - state.typedAt < 3000) return;
    state.typedAt = now;
    state.ws.send(JSON.stringify({ type: 'typing', conversation: state.selected }));
  }

  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/ws');
    state.ws = ws;
    ws.onopen = () => {
      const hello = { type: 'hello' };
      if (state.welcomed) { hello.last_seq = state.seq; hello.epoch = state.epoch; }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === 'welcome' || f.type === 'reload') {
        const fresh = !state.welcomed || f.type === 'reload';
        state.epoch = f.epoch;
        if (fresh) state.seq = f.seq;
        state.welcomed = true;
        state.backoff = 500;
        $('conn').textContent = T.connected;
        $('conn').className = 'conn ok';
        if (fresh) loadWorkbench().catch((e) => banner(e.message));
      } else if (f.type === 'signed_out') {
        state.signedOut = true;
        location.href = '/login?next=/workbench';
      } else if (f.type === 'event') {
        if (f.seq <= state.seq) return; // seen already
        state.seq = f.seq;
        apply(f.event);
      }
    };
    ws.onclose = () => {
      if (state.signedOut) return;
      $('conn').textContent = T.reconnecting;
      $('conn').className = 'conn down';
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 10000);
    };
  }

  async function act(path, body) {
    if (!state.selected) return;
    try {
      await api('POST', '/api/conversations/' + state.selected + path, body);
      await loadWorkbench();
    } catch (e) {
      banner(e.message);
    }
  }

  $('send').addEventListener('click', send);
  $('note-mode').addEventListener('change', () => {
    const on = $('note-mode').checked;
    $('text').closest('.composer').classList.toggle('noting', on);
    $('text').placeholder = on ? T.note_placeholder : $('text').dataset.placeholder;
    $('attach').disabled = on;
  });
  $('text').dataset.placeholder = $('text').placeholder;
  $('attach').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', () => {
    const files = Array.from($('file').files || []);
    $('file').value = '';
    for (const f of files) sendFile(f);
  });
  // A picture pasted into the composer, or files dropped on the conversation.
  $('text').addEventListener('input', typing);
  $('text').addEventListener('paste', (e) => {
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []);
    if (files.length) { e.preventDefault(); for (const f of files) sendFile(f); }
  });
  $('chat').addEventListener('dragover', (e) => { e.preventDefault(); $('chat').classList.add('dropping'); });
  $('chat').addEventListener('dragleave', () => $('chat').classList.remove('dropping'));
  $('chat').addEventListener('drop', (e) => {
    e.preventDefault();
    $('chat').classList.remove('dropping');
    for (const f of Array.from((e.dataTransfer && e.dataTransfer.files) || [])) sendFile(f);
  });
  $('quick').addEventListener('change', useQuick);
  $('save-quick').addEventListener('click', saveQuick);
  $('emoji').addEventListener('click', toggleEmoji);
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('close').addEventListener('click', () => act('/close'));
  $('transfer').addEventListener('click', () => {
    const target = $('transfer-target').value.trim();
    const note = $('transfer-note').value.trim();
    if (!target) return;
    const body = target.startsWith('g') ? { group_id: Number(target.slice(1)) } : { agent_id: Number(target) };
    if (note) body.note = note;
    act('/transfer', body);
  });
  $('status').addEventListener('change', () => {
    api('POST', '/api/presence', { status: $('status').value }).catch((e) => banner(e.message));
  });
  setInterval(() => api('POST', '/api/presence/heartbeat').catch(() => {}), 30000);
  setInterval(renderList, 60000);

  // For tests and the curious: cut the socket (it reconnects and resumes).
  window.kefuWorkbench = { cut: () => state.ws && state.ws.close(), state };
  connect();
})();
