// Kefu supervisors' board: polls /api/board; every customer-provided string
// is put in the page with textContent only.
'use strict';
(function () {
  const T = JSON.parse(document.getElementById('kefu-strings').textContent);
  const { el, api } = window.Kefu;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 5000;
  let watching = null;

  function banner(text, kind) {
    const b = $('banner');
    b.textContent = text || '';
    b.className = text ? 'banner ' + (kind || 'error') : 'banner';
  }

  function waited(secs) {
    return secs < 60 ? T.secs.replace('{n}', secs) : T.mins.replace('{n}', Math.floor(secs / 60));
  }

  function channelName(c) {
    return { oa: T.channel_oa, wecom_kf: T.channel_kf, web: T.channel_web }[c] || c;
  }

  function renderGroups(groups) {
    const box = $('groups');
    box.replaceChildren();
    for (const g of groups) {
      const card = el('section', 'group');
      card.dataset.group = g.id === null ? '' : g.id;
      const head = el('div', 'group-head');
      head.append(el('strong', null, g.name || T.no_group));
      head.append(el('span', 'badge' + (g.queued ? ' hot' : ''), T.queue_depth + ' ' + g.queued));
      if (g.queued) head.append(el('span', 'small', T.longest_wait + ' ' + waited(g.longest_wait_secs)));
      card.append(head);
      if (g.agents.length === 0) card.append(el('div', 'small', T.none));
      for (const a of g.agents) {
        const row = el('div', 'agent');
        row.dataset.agent = a.id;
        row.append(el('span', 'dot st-' + a.status));
        row.append(el('span', 'who', a.name));
        const st = a.on_shift ? T['status_' + a.status] : T.off_shift;
        row.append(el('span', 'small', st));
        row.append(el('span', 'small load', T.load + ' ' + a.load + '/' + a.capacity));
        card.append(row);
      }
      box.append(card);
    }
  }

  function renderUnanswered(list) {
    const body = $('unanswered').tBodies[0];
    body.replaceChildren();
    if (list.length === 0) {
      const tr = el('tr'); const td = el('td', 'small', T.none); td.colSpan = 4; tr.append(td); body.append(tr);
    }
    for (const u of list) {
      const tr = el('tr');
      tr.dataset.conversation = u.conversation;
      const who = el('td');
      who.append(el('span', 'badge ch-' + u.channel, channelName(u.channel)), ' ', el('span', null, u.customer_name || T.customer + ' #' + u.customer));
      tr.append(who, el('td', null, u.agent_name || T.none), el('td', 'wait', waited(u.waiting_secs)));
      const act = el('td', 'actions');
      const view = el('button', 'secondary view', T.view); view.type = 'button';
      view.addEventListener('click', () => watch(u.conversation, u.customer_name || T.customer + ' #' + u.customer));
      const take = el('button', 'take', T.take_over); take.type = 'button';
      take.addEventListener('click', () => takeOver(u.conversation));
      const target = el('input', 'target'); target.placeholder = T.transfer_target; target.setAttribute('aria-label', T.transfer_target);
      const move = el('button', 'secondary move', T.transfer); move.type = 'button';
      move.addEventListener('click', () => transfer(u.conversation, target.value));
      act.append(view, take, target, move);
      tr.append(act);
      body.append(tr);
    }
  }

  function renderDecisions(list) {
    const body = $('decisions').tBodies[0];
    body.replaceChildren();
    for (const d of list) {
      const tr = el('tr');
      tr.append(el('td', 'small', new Date(d.at).toLocaleTimeString()), el('td', null, d.conversation), el('td', null, d.agent_name || ''), el('td', null, d.reason));
      body.append(tr);
    }
  }

  async function refresh() {
    try {
      const b = await api('GET', '/api/board');
      renderGroups(b.groups);
      renderUnanswered(b.unanswered);
      renderDecisions(b.decisions);
      const u = $('updated');
      u.textContent = T.updated.replace('{time}', new Date(b.now).toLocaleTimeString());
      u.className = 'conn ok';
      if (watching) await showLive();
    } catch (e) {
      $('updated').className = 'conn down';
      banner(e.message);
    }
  }

  async function showLive() {
    const d = await api('GET', '/api/conversations/' + watching.id + '?limit=50');
    const box = $('live-messages');
    box.replaceChildren();
    for (const m of d.messages) {
      const kind = m.direction === 'in' ? 'in' : m.direction === 'note' ? 'note' : 'out';
      const row = el('div', 'msg ' + kind);
      row.append(el('div', 'meta', (kind === 'in' ? T.customer : kind === 'note' ? T.note + ' · ' + m.sender : m.sender) + ' · ' + new Date(m.sent_at).toLocaleTimeString()));
      row.append(el('div', 'body', m.content || '[' + m.msg_type + ']'));
      box.append(row);
    }
    box.scrollTop = box.scrollHeight;
  }

  async function watch(id, title) {
    watching = { id };
    $('live-title').textContent = title;
    $('live').hidden = false;
    await showLive().catch((e) => banner(e.message));
  }

  async function takeOver(id) {
    try {
      const me = Number(document.querySelector('meta[name="kefu-me"]').content);
      await api('POST', '/api/conversations/' + id + '/transfer', { agent_id: me, note: T.take_over });
      banner(T.took_over, 'warn');
      await refresh();
    } catch (e) { banner(e.message); }
  }

  async function transfer(id, raw) {
    const v = (raw || '').trim();
    const body = v.startsWith('g') ? { group_id: Number(v.slice(1)) } : { agent_id: Number(v) };
    try {
      await api('POST', '/api/conversations/' + id + '/transfer', body);
      banner(T.transferred, 'warn');
      await refresh();
    } catch (e) { banner(e.message); }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
  window.kefuBoard = { refresh };
})();
