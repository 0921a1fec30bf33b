
(function () {
  var root = document.body, url = root.getAttribute('data-live');
  if (!url) { return; }
  var kind = root.getAttribute('data-page');
  function text(el, value) { el.textContent = value == null ? '' : String(value); }
  function cell(tr, value, cls) { var td = document.createElement('td'); text(td, value);
    if (cls) { td.className = cls; } tr.appendChild(td); return td; }
  function badge(status) { var s = document.createElement('span');
    s.className = 'badge st-' + status; text(s, status); return s; }
  function fmt(t) { return t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) : ''; }
  function dur(s) { if (s == null) { return ''; }
    if (s < 1) { return s < 0.001 ? 'under 1 ms' : Math.round(s * 1000) + ' ms'; }
    if (s < 60) { return s.toFixed(1) + ' s'; }
    return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s'; }
  function list(data) {
    var body = document.getElementById('rows'); body.textContent = '';
    data.executions.forEach(function (r) {
      var tr = document.createElement('tr'); tr.setAttribute('data-id', r.id);
      var a = document.createElement('a'); a.href = 'executions/' + encodeURIComponent(r.id);
      text(a, r.id); cell(tr, '', 'id').appendChild(a); cell(tr, r.workflow_name);
      var st = cell(tr, ''); st.appendChild(badge(r.status));
      if (r.stuck) { var k = document.createElement('span'); k.className = 'badge stuck';
        k.title = r.stuck.reason + '\nfix: ' + r.stuck.command; text(k, 'stuck: ' + r.stuck.signature);
        st.appendChild(document.createTextNode(' ')); st.appendChild(k); }
      cell(tr, fmt(r.created_at));
      cell(tr, dur(r.duration_s) + (r.terminal ? '' : '+')); cell(tr, r.error, 'error');
      body.appendChild(tr); });
    text(document.getElementById('count'), data.executions.length);
  }
  function detail(data) {
    var ex = data.execution, b = document.getElementById('status');
    b.className = 'badge st-' + ex.status; text(b, ex.status);
    text(document.getElementById('duration'), dur(ex.duration_s) + (ex.terminal ? '' : '+'));
    Object.keys(data.tasks).forEach(function (wf) {
      var svg = document.querySelector('svg[data-execution="' + wf + '"]'); if (!svg) { return; }
      var tasks = data.tasks[wf];
      Object.keys(tasks).forEach(function (name) {
        svg.querySelectorAll('g.node').forEach(function (g) {
          if (g.getAttribute('data-task') !== name) { return; }
          var t = tasks[name];
          g.setAttribute('class', g.getAttribute('class').replace(/state-\S+/, 'state-' + t.state));
          var label = g.querySelector('text.state');
          if (label) { text(label, t.state + (t.items != null ? ' \u00b7 ' + t.items + ' items' : '')); }
        }); }); });
    if (ex.terminal && root.getAttribute('data-terminal') !== 'true') { location.reload(); return true; }
    // Each action button says in which statuses it applies (data-when).
    document.querySelectorAll('#actions form[data-when]').forEach(function (f) {
      f.hidden = f.getAttribute('data-when').split(' ').indexOf(ex.status) < 0; });
  }
  function apply(data) { return data && (kind === 'list' ? list(data) : detail(data)); }
  function poll() {
    fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
      return r.ok ? r.json() : null; }).then(function (data) {
      if (!apply(data)) { setTimeout(poll, 1500); }
    }).catch(function () { setTimeout(poll, 3000); });
  }
  // The stream says when something changed; the page then re-reads its JSON
  // (one read for a burst of events). Without EventSource: polling.
  var stream = root.getAttribute('data-stream');
  if (!stream || !window.EventSource) { setTimeout(poll, 1500); return; }
  var source = new EventSource(stream), due = false;
  function reread() {
    if (due) { return; } due = true;
    setTimeout(function () {
      due = false;
      fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
        return r.ok ? r.json() : null; }).then(function (data) {
        if (apply(data)) { source.close(); }
      }).catch(function () { /* the next event tries again */ });
    }, 150);
  }
  ['created', 'status', 'task', 'end', 'reset'].forEach(function (name) {
    source.addEventListener(name, reread); });
  // (Re)connected: catch up on what happened before (EventSource sends Last-Event-ID itself).
  source.onopen = function () { root.setAttribute('data-stream-state', 'open'); reread(); };
  source.onerror = function () { root.setAttribute('data-stream-state', 'retrying'); };
})();
