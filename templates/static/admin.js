// Kefu administration: users and city groups through /api/admin/*.
// Every stored string is put in the page with textContent only.
'use strict';
(function () {
  const T = JSON.parse(document.getElementById('kefu-strings').textContent);
  const { el, api } = window.Kefu;
  const $ = (id) => document.getElementById(id);
  let agents = [];
  let groups = [];

  function say(text, secret) {
    const b = $('banner');
    b.replaceChildren();
    if (!text) { b.className = ''; return; }
    b.className = secret ? 'notice' : 'error';
    b.append(el('span', null, text));
    if (secret) b.append(el('div', 'secret', secret));
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

  async function load() {
    const [a, g] = await Promise.all([api('GET', '/api/admin/agents'), api('GET', '/api/admin/groups')]);
    agents = a.agents;
    groups = g.groups;
    renderRows();
    renderGroups();
    renderNewUser();
  }

  load().catch((e) => say(e.message));
})();
