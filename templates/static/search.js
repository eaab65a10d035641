// History search: words and filters to /api/search, hits with their words
// marked (as text), and a hit's context from the customer's history.
'use strict';
(function () {
  const { el, api } = window.Kefu;
  const T = JSON.parse(document.getElementById('kefu-strings').textContent);
  const $ = (id) => document.getElementById(id);
  const form = $('search-form');
  const results = $('results');
  const more = $('more');
  const summary = $('summary');
  const banner = $('banner');
  let shown = 0;
  let next = null;
  let params = null;

  function channelName(c) {
    return c === 'oa' ? T.channel_oa : c === 'wecom_kf' ? T.channel_kf : T.channel_web;
  }
  function channelClass(c) {
    return c === 'oa' ? 'ch-oa' : c === 'wecom_kf' ? 'ch-kf' : 'ch-web';
  }
  function who(m) {
    if (m.direction === 'in') return m.customer_name || T.customer_sender;
    if (m.direction === 'note') return T.note + ' · ' + (m.agent_name || m.sender);
    if (m.agent_name) return m.agent_name;
    return m.sender === 'robot' ? T.robot_sender : m.sender === 'system' ? T.system_sender : m.sender;
  }
  function showError(msg) {
    banner.textContent = msg;
    banner.className = 'banner error';
  }

  // A date input's day as the local midnight (the end: the next midnight).
  function dayBound(value, end) {
    if (!value) return '';
    const [y, m, d] = value.split('-').map(Number);
    return new Date(y, m - 1, d + (end ? 1 : 0)).toISOString();
  }

  function read() {
    const p = new URLSearchParams();
    const q = $('q').value.trim();
    if (q) p.set('q', q);
    const customer = $('customer').value.trim();
    if (customer) p.set('customer', customer);
    if ($('agent').value) p.set('agent', $('agent').value);
    if ($('channel').value) p.set('channel', $('channel').value);
    const from = dayBound($('from').value, false);
    if (from) p.set('from', from);
    const to = dayBound($('to').value, true);
    if (to) p.set('to', to);
    return p;
  }

  function hitNode(h) {
    const d = el('div', 'hit');
    d.dataset.message = h.message_id;
    const meta = el('div', 'meta');
    meta.append(el('span', 'badge ' + channelClass(h.channel), channelName(h.channel)));
    meta.append(el('strong', null, who(h)));
    if (h.direction !== 'in' && h.customer_name) meta.append(el('span', null, '→ ' + h.customer_name));
    meta.append(el('span', null, new Date(h.sent_at).toLocaleString()));
    d.append(meta);
    const text = el('div', 'text');
    if (h.excerpt.length === 0) text.append(el('span', null, T.media));
    for (const piece of h.excerpt) text.append(el(piece.hit ? 'mark' : 'span', null, piece.text));
    d.append(text);
    d.addEventListener('click', () => openContext(h, d));
    return d;
  }

  async function run(append) {
    banner.className = 'banner';
    const p = new URLSearchParams(params);
    if (append && next) p.set('before', next);
    let data;
    try {
      data = await api('GET', '/api/search?' + p.toString());
    } catch (e) {
      showError(e.message);
      return;
    }
    if (!append) {
      results.replaceChildren();
      shown = 0;
    }
    for (const h of data.results) results.append(hitNode(h));
    shown += data.results.length;
    next = data.next_before;
    more.hidden = !next;
    summary.textContent = shown === 0 ? T.no_results
      : (next ? T.found_more : T.found).replace('{n}', shown);
  }

  async function openContext(h, node) {
    for (const n of results.querySelectorAll('.hit.selected')) n.classList.remove('selected');
    node.classList.add('selected');
    const box = $('context-messages');
    $('context').hidden = false;
    $('context-title').textContent = T.context + ' · ' + (h.customer_name || ('#' + h.customer_id));
    box.replaceChildren();
    if (!h.customer_id) return;
    let page;
    try {
      page = await api('GET', '/api/customers/' + h.customer_id + '/messages?limit=15&before=' + (h.message_id + 8));
    } catch (e) {
      box.append(el('p', 'empty', e.message));
      return;
    }
    for (const m of page.messages) {
      const c = el('div', 'cmsg' + (m.direction === 'in' ? '' : ' ' + m.direction) + (m.id === h.message_id ? ' target' : ''));
      c.append(el('div', 'hint', channelName(m.channel) + ' · ' + who(m) + ' · ' + new Date(m.sent_at).toLocaleString()));
      c.append(el('div', null, m.content || T.media));
      box.append(c);
    }
    const target = box.querySelector('.target');
    if (target) target.scrollIntoView({ block: 'center' });
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    params = read();
    if (!params.has('q') && !params.has('customer') && !params.has('agent')) {
      showError(T.need_input);
      return;
    }
    const shareable = new URLSearchParams();
    for (const k of ['q', 'customer', 'agent', 'channel']) if (params.has(k)) shareable.set(k, params.get(k));
    history.replaceState(null, '', '/search?' + shareable.toString());
    run(false);
  });
  more.addEventListener('click', () => run(true));

  // /search?q=..&customer=..: filled in and run (links from the workbench).
  const start = new URLSearchParams(location.search);
  for (const k of ['q', 'customer', 'agent', 'channel']) if (start.get(k)) $(k).value = start.get(k);
  if (start.get('q') || start.get('customer') || start.get('agent')) form.requestSubmit();
})();
