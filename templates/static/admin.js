// Kefu administration: users and city groups through /api/admin/*, the
// shared quick replies through /api/quick-replies, and the configured
// WeChat accounts (read-only) from /api/admin/accounts.
// Every stored string is put in the page with textContent only.
'use strict';
(function () {
  const T = JSON.parse(document.getElementById('kefu-strings').textContent);
  const { el, api } = window.Kefu;
  const $ = (id) => document.getElementById(id);
  let agents = [];
  let groups = [];
  // As quick_reply_api.rs: the server checks them too.
  const TITLE_MAX = 64;
  const CONTENT_MAX = 2000;

  function say(text, secret) {
    const b = $('banner');
    b.replaceChildren();
    if (!text) { b.className = ''; return; }
    b.className = secret ? 'notice' : 'error';
    b.append(el('span', null, text));
    if (secret) b.append(el('div', 'secret', secret));
  }

  function done(text) {
    const b = $('banner');
    b.replaceChildren(el('span', null, text));
    b.className = 'notice';
  }

  function input(name, value, label) {
    const i = el('input');
    i.name = name;
    i.value = value === undefined || value === null ? '' : value;
    i.setAttribute('aria-label', label);
    i.placeholder = label;
    return i;
  }

  function roleSelect(value) {
    const s = el('select');
    s.name = 'role';
    s.setAttribute('aria-label', T.role);
    for (const r of ['agent', 'supervisor', 'admin']) {
      const o = el('option', null, T['role_' + r]);
      o.value = r;
      if (r === value) o.selected = true;
      s.append(o);
    }
    return s;
  }

  function groupSelect(chosen) {
    const s = el('select');
    s.name = 'groups';
    s.multiple = true;
    s.setAttribute('aria-label', T.user_groups);
    for (const g of groups) {
      const o = el('option', null, g.name);
      o.value = String(g.id);
      if (chosen.includes(g.id)) o.selected = true;
      s.append(o);
    }
    return s;
  }

  function chosenGroups(s) {
    return [...s.selectedOptions].map((o) => Number(o.value));
  }

  function button(text, cls, onClick) {
    const b = el('button', cls, text);
    b.type = 'button';
    b.addEventListener('click', () => onClick().catch((e) => say(e.message)));
    return b;
  }

  function renderNewUser() {
    const box = $('new-user');
    box.replaceChildren(el('legend', null, T.new_user));
    const login = input('login', '', T.login);
    const name = input('name', '', T.name);
    const role = roleSelect('agent');
    const cap = input('capacity', '10', T.capacity);
    cap.type = 'number';
    const gs = groupSelect([]);
    const row = el('div', 'row');
    row.append(login, name, role, cap, gs, button(T.create, 'create', async () => {
      const made = await api('POST', '/api/admin/agents', {
        login: login.value, name: name.value, role: role.value,
        capacity: Number(cap.value), groups: chosenGroups(gs),
      });
      say(made.agent.login + ' · ' + T.one_time, made.one_time_password);
      login.value = ''; name.value = '';
      await load();
    }));
    box.append(row);
  }

  function edit(a) {
    const box = $('editor');
    box.replaceChildren(el('legend', null, a.login));
    box.dataset.agent = a.id;
    const name = input('name', a.name, T.name);
    const role = roleSelect(a.role);
    const cap = input('capacity', a.capacity, T.capacity);
    cap.type = 'number';
    const gs = groupSelect(a.groups);
    const row = el('div', 'row');
    row.append(name, role, cap, gs,
      button(T.save, 'save', async () => {
        await api('PATCH', '/api/admin/agents/' + a.id, {
          name: name.value, role: role.value, capacity: Number(cap.value), groups: chosenGroups(gs),
        });
        say(T.saved);
        await load();
      }),
      button(a.disabled ? T.enable : T.disable, 'secondary toggle', async () => {
        await api('PATCH', '/api/admin/agents/' + a.id, { disabled: !a.disabled });
        location.reload();
      }),
      button(T.reset_password, 'secondary reset', async () => {
        const r = await api('POST', '/api/admin/agents/' + a.id + '/password', {});
        say(a.login + ' · ' + T.one_time, r.one_time_password);
      }));
    box.append(row);
    box.hidden = false;
  }

  function renderRows() {
    for (const tr of document.querySelectorAll('#users tr[data-agent]')) {
      const a = agents.find((x) => String(x.id) === tr.dataset.agent);
      const cell = tr.querySelector('.actions');
      cell.replaceChildren();
      if (a) cell.append(button(T.edit, 'secondary edit', async () => edit(a)));
    }
  }

  function renderGroups() {
    const box = $('groups');
    box.replaceChildren(el('legend', null, T.groups));
    for (const g of groups) {
      const row = el('div', 'row');
      row.dataset.group = g.id;
      const name = input('name', g.name, T.name);
      row.append(el('span', null, '#' + g.id), name, button(T.rename, 'secondary rename', async () => {
        await api('PATCH', '/api/admin/groups/' + g.id, { name: name.value });
        say(T.saved);
        await load();
      }));
      box.append(row);
    }
    const add = input('new-group', '', T.new_group);
    const row = el('div', 'row');
    row.append(add, button(T.add_group, 'add-group', async () => {
      await api('POST', '/api/admin/groups', { name: add.value });
      add.value = '';
      await load();
    }));
    box.append(row);
  }

  function textarea(name, value, label) {
    const t = el('textarea');
    t.name = name;
    t.value = value || '';
    t.setAttribute('aria-label', label);
    t.placeholder = label;
    t.maxLength = CONTENT_MAX;
    return t;
  }

  // Puts `text` at the cursor of `area`.
  function insertAt(area, text) {
    const start = area.selectionStart ?? area.value.length;
    const end = area.selectionEnd ?? start;
    area.setRangeText(text, start, end, 'end');
    area.focus();
  }

  // A title and a content, or null (and a word why) when one is empty.
  function replyOf(title, content) {
    const r = { title: title.value.trim(), content: content.value.trim(), shared: true };
    if (!r.title || !r.content) {
      say(T.qr_required);
      return null;
    }
    return r;
  }

  function replyFields(r) {
    const title = input('title', r.title, T.qr_title);
    title.maxLength = TITLE_MAX;
    const content = textarea('content', r.content, T.qr_content);
    const vars = el('div', 'row');
    vars.append(
      button(T.qr_insert_customer, 'secondary insert-customer', async () => insertAt(content, T.qr_customer_var)),
      button(T.qr_insert_agent, 'secondary insert-agent', async () => insertAt(content, T.qr_agent_var)));
    return { title, content, vars };
  }

  function renderReplies(replies) {
    const box = $('quick-replies');
    box.replaceChildren(el('legend', null, T.qr_section));
    const vars = el('ul', 'hint');
    vars.append(el('li', null, T.qr_var_customer), el('li', null, T.qr_var_agent));
    box.append(el('p', 'hint', T.qr_help), vars, el('p', 'hint', T.qr_limits));
    const list = el('div', 'qr-list');
    const shared = replies.filter((r) => r.shared);
    if (!shared.length) list.append(el('p', 'hint empty', T.qr_none));
    for (const r of shared) {
      const row = el('div', 'qr');
      row.dataset.reply = r.id;
      const f = replyFields(r);
      row.append(f.title, f.content);
      if (r.editable) {
        const actions = el('div', 'row');
        actions.append(
          button(T.save, 'save', async () => {
            const body = replyOf(f.title, f.content);
            if (!body) return;
            await api('PUT', '/api/quick-replies/' + r.id, body);
            done(T.saved);
            await loadReplies();
          }),
          button(T.qr_delete, 'secondary delete', async () => {
            if (!confirm(T.qr_delete_confirm)) return;
            await api('DELETE', '/api/quick-replies/' + r.id);
            done(T.qr_deleted);
            await loadReplies();
          }));
        row.append(f.vars, actions);
      }
      list.append(row);
    }
    box.append(list);
    const add = el('div', 'qr qr-new');
    const f = replyFields({});
    add.append(el('div', 'hint', T.qr_new), f.title, f.content, f.vars,
      button(T.qr_add, 'add-reply', async () => {
        const body = replyOf(f.title, f.content);
        if (!body) return;
        await api('POST', '/api/quick-replies', body);
        done(T.qr_added);
        await loadReplies();
      }));
    box.append(add);
  }

  async function loadReplies() {
    const r = await api('GET', '/api/quick-replies');
    renderReplies(r.replies);
  }

  function copyButton(text) {
    return button(T.acc_copy, 'secondary copy', async () => {
      await navigator.clipboard.writeText(text);
      done(T.acc_copied + ': ' + text);
    });
  }

  function accountTable(a) {
    const t = el('table', 'account');
    t.dataset.account = a.id;
    const kind = T['kind_' + a.kind] || a.kind;
    t.append(el('caption', null, a.name + ' · ' + kind));
    const body = el('tbody');
    const row = (label, ...values) => {
      const tr = el('tr');
      const td = el('td');
      td.append(...values.map((v) => (typeof v === 'string' ? document.createTextNode(v) : v)));
      tr.append(el('th', null, label), td);
      body.append(tr);
      return tr;
    };
    const set = (ok) => (ok ? T.configured : T.not_configured);
    row(T.acc_id, el('code', null, a.id));
    row(T.acc_kind, kind);
    row(T.acc_name, a.name);
    if (a.kind === 'official_account') row(T.acc_app_id, el('code', null, a.app_id));
    else row(T.acc_corp_id, el('code', null, a.corp_id));
    if (a.open_kfids) {
      row(T.acc_open_kfids, a.open_kfids.length
        ? a.open_kfids.map((k) => el('code', null, k)).flatMap((c, i) => (i ? [' ', c] : [c]))
        : T.acc_open_kfids_none)
        .classList.add('open-kfids');
    }
    const cb = [el('code', 'callback', a.callback_url)];
    if (navigator.clipboard) cb.push(' ', copyButton(a.callback_url));
    row(T.acc_callback, ...cb);
    row(T.acc_encryption, T['enc_' + a.encryption] || a.encryption).classList.add('encryption');
    if (a.token_mode) row(T.acc_token_mode, T['token_' + a.token_mode] || a.token_mode);
    row(T.acc_link_unionid, a.link_unionid ? T.yes : T.no).classList.add('link-unionid');
    if (a.welcome_message) row(T.acc_welcome, a.welcome_message);
    row(T.acc_secret, set(a.secret_configured)).classList.add('secret-set');
    row(T.acc_token, set(a.token_configured));
    row(T.acc_aes_key, set(a.encoding_aes_key_configured));
    row(T.acc_file, el('code', null, a.file));
    t.append(body);
    return t;
  }

  async function loadAccounts() {
    const o = await api('GET', '/api/admin/accounts');
    const box = $('accounts');
    box.replaceChildren(el('legend', null, T.acc_section), el('p', 'hint', T.acc_help));
    if (!o.public_url_configured) box.append(el('p', 'warn', T.acc_public_url_missing));
    if (!o.accounts.length) box.append(el('p', 'hint empty', T.acc_none));
    for (const a of o.accounts) box.append(accountTable(a));
  }

  async function load() {
    const [a, g] = await Promise.all([api('GET', '/api/admin/agents'), api('GET', '/api/admin/groups')]);
    agents = a.agents;
    groups = g.groups;
    renderRows();
    renderGroups();
    renderNewUser();
  }

  load().catch((e) => say(e.message));
  loadReplies().catch((e) => say(e.message));
  loadAccounts().catch((e) => say(e.message));
})();
