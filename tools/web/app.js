// SPDX-License-Identifier: MIT
/*
 * fwire serve: the page's script (plain JavaScript, no build step, no external resources).
 *
 * It opens one WebSocket to /ws (plus ?token=T when the page URL has ?token=T), sends
 * stream_query / cancel_query / pause_query / resume_query and shows each stream as a card.
 * A card keeps only the last KEEP_ROWS rows (a stream may be millions of rows long) and
 * redraws at most once per animation frame, however fast batches arrive.
 *
 * Stable hooks for tests (ids are unique on the page; data-testid inside a card is unique in
 * that card):
 *   #conn-status [data-testid=conn-status]   data-state: connecting | open | closed
 *   #reconnect   [data-testid=reconnect]     shown only while the socket is closed
 *   #query-form  [data-testid=query-form]
 *   #entity      [data-testid=entity]        text input, datalist #entity-list: the server's
 *                --allow list from GET /entities (data-loaded="true" once it arrived)
 *   #limit       [data-testid=limit]         optional, integer >= 0
 *   #batch-size  [data-testid=batch-size]    optional, integer >= 1
 *   #cond-list   conditions, each [data-testid=condition] with [data-testid=cond-path],
 *                [data-testid=cond-op] (select), [data-testid=cond-value], [data-testid=
 *                cond-remove]; #add-cond [data-testid=add-cond] adds one. A line without a
 *                path is ignored; the value is JSON when it parses as JSON, else text.
 *   #where       [data-testid=where]         optional JSON array of {path, op, value}, added
 *                to the conditions (for experts)
 *   #order-by    [data-testid=order-by]      optional path; #order-desc [data-testid=order-desc]
 *   #start       [data-testid=start]         submit; disabled while the socket is not open
 *   #form-error  [data-testid=form-error]    why the form was not sent
 *   #global-error [data-testid=global-error] errors that belong to no card, and socket trouble;
 *                text in #global-error-text, closed by #global-error-dismiss
 *   #streams     [data-testid=streams]       holds the cards, newest first
 *   #stream-count [data-testid=stream-count] number of cards
 *   #clear-finished [data-testid=clear-finished]
 *   a card: article#stream-<request_id> [data-testid=stream-card]
 *     data-request-id, data-stream-id (once query_started arrived), data-entity,
 *     data-state: starting | running | pausing | paused | resuming | cancelling |
 *                 completed | cancelled | error | disconnected
 *     (completed, cancelled, error and disconnected are final)
 *     inside: [data-testid=state] (state label), [data-testid=pause] (Pause/Resume),
 *     [data-testid=cancel], [data-testid=close] (shown once final),
 *     [data-testid=rows-count] (text with separators; data-value = plain integer),
 *     [data-testid=progress] (role=progressbar, aria-valuenow, data-percent; no value while
 *     the total is unknown), [data-testid=percent], [data-testid=estimated],
 *     [data-testid=rate], [data-testid=eta], [data-testid=batches], [data-testid=elapsed],
 *     [data-testid=summary] (completed/cancelled line; data-total-rows, data-execution-ms),
 *     [data-testid=error] with [data-testid=error-code], [data-testid=error-sqlstate],
 *     [data-testid=error-message], [data-testid=rows] (the last rows, one a line: the row's
 *     number in the stream, padded, two spaces, its JSON; long rows cut at MAX_LINE chars),
 *     [data-testid=follow] (unchecked: the rows box stops updating so it can be read)
 *   A card is redrawn at once when its data-state changes, so the figures inside match the
 *   state; data-percent is 100.0 only once completed (an estimate can be exceeded). The
 *   planner's estimate is shown as one ("~"); once more rows than it arrived, the bar turns
 *   indeterminate (no data-percent, data-estimate-passed="true") until the stream ends. Rows/s
 *   is the rows received over the time since the query was sent, live from the first batch.
 *   window.fwirePage: {state(): a snapshot of the cards, socket(): the WebSocket}
 *
 * Page URL parameters: token=T (passed on to /ws and the /metrics link), entity=NAME (fills
 * the entity field). When the socket cannot open, /metrics (which takes the same token) is
 * asked to tell a missing or wrong token from a server that is not there.
 */
'use strict';

(function () {
  const KEEP_ROWS = 50;        // rows kept (and shown) per card
  const MAX_LINE = 400;        // characters of one row shown in the box
  const TICK_MS = 500;         // elapsed-time refresh of running cards
  const FINAL = new Set(['completed', 'cancelled', 'error', 'disconnected']);
  const STATE_LABEL = {
    starting: 'Starting', running: 'Streaming', pausing: 'Pausing…', paused: 'Paused',
    resuming: 'Resuming…', cancelling: 'Cancelling…', completed: 'Completed',
    cancelled: 'Cancelled', error: 'Error', disconnected: 'Disconnected',
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn-status'), connText: $('conn-text'), reconnect: $('reconnect'),
    form: $('query-form'), entity: $('entity'), entityList: $('entity-list'),
    limit: $('limit'), batch: $('batch-size'), where: $('where'), orderBy: $('order-by'),
    orderDesc: $('order-desc'), start: $('start'), formError: $('form-error'),
    condList: $('cond-list'), addCond: $('add-cond'), condTemplate: $('cond-template'),
    globalError: $('global-error'), globalErrorText: $('global-error-text'),
    globalErrorDismiss: $('global-error-dismiss'), streams: $('streams'), count: $('stream-count'),
    clear: $('clear-finished'), empty: $('empty-note'), template: $('card-template'),
  };

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => nf.format(Math.round(n));

  const params = new URLSearchParams(window.location.search);
  const token = params.get('token');
  const tokenQuery = token !== null && token !== '' ? '?token=' + encodeURIComponent(token) : '';
  for (const a of [$('link-healthz'), $('link-metrics')]) a.href += tokenQuery;
  if (params.get('entity')) ui.entity.value = params.get('entity');

  const baseTitle = document.title;
  let ws = null;
  let everOpened = false;
  let nextRequest = 1;
  const byRequest = new Map();   // request_id -> card
  const byStream = new Map();    // stream_id -> card
  const dirty = new Set();
  let frameQueued = false;

  // ---------------------------------------------------------------- formatting
  function fmtDuration(sec, precise) {
    if (sec === null || sec === undefined || !isFinite(sec) || sec < 0) return '–';
    if (precise && sec < 1) {
      return (sec < 0.01 ? (sec * 1000).toFixed(1) : String(Math.round(sec * 1000))) + ' ms';
    }
    if (sec < 60) {
      if (precise) return (sec < 10 ? sec.toFixed(2) : sec.toFixed(1)) + ' s';
      return sec < 1 ? '< 1 s' : Math.round(sec) + ' s';
    }
    const s = Math.round(sec);
    if (s < 3600) return Math.floor(s / 60) + ' m ' + String(s % 60).padStart(2, '0') + ' s';
    return Math.floor(s / 3600) + ' h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + ' m';
  }
  function fmtPercent(p) {
    if (p >= 100) return '100 %';
    return (Math.floor(p * 10) / 10).toFixed(1) + ' %';
  }
  function rowText(v) {
    let t;
    try { t = JSON.stringify(v); } catch (e) { t = String(v); }
    if (t === undefined) t = String(v);
    return t.length > MAX_LINE ? t.slice(0, MAX_LINE) + ' … (' + fmtInt(t.length) + ' chars)' : t;
  }
  const isNum = (x) => typeof x === 'number' && isFinite(x);

  // ---------------------------------------------------------------- connection
  function wsUrl() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + '/ws' + tokenQuery;
  }

  function setConn(state, text) {
    ui.conn.dataset.state = state;
    ui.connText.textContent = text;
    ui.reconnect.hidden = state !== 'closed';
    ui.start.disabled = state !== 'open';
  }

  function connect() {
    if (ws && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN)) return;
    setConn('connecting', 'Connecting…');
    let sock;
    try {
      sock = new WebSocket(wsUrl());
    } catch (e) {
      setConn('closed', 'Disconnected');
      showGlobalError('Could not open the WebSocket: ' + e.message);
      return;
    }
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      if (ws !== sock) return;
      opened = true;
      everOpened = true;
      hideGlobalError();
      setConn('open', 'Connected');
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        showGlobalError('The server sent a message that is not JSON: ' +
          String(ev.data).slice(0, 200));
        return;
      }
      handle(msg);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      let why = 'Disconnected';
      if (ev.code && ev.code !== 1000 && ev.code !== 1005) {
        why += ' (code ' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')';
      } else if (ev.reason) {
        why += ' (' + ev.reason + ')';
      }
      setConn('closed', why);
      if (!opened) {
        showGlobalError('Could not connect to the server.');
        diagnose();
      } else {
        showGlobalError('The connection to the server closed. Streams that were running ' +
          'have stopped; press Reconnect to start new ones.');
      }
      for (const card of byRequest.values()) {
        if (!FINAL.has(card.state)) {
          card.endedAt = performance.now();
          setState(card, 'disconnected');
        }
      }
    };
  }

  // The browser does not say why a WebSocket handshake failed. /metrics takes the same token
  // as /ws, so its status tells a missing or wrong token from a server that is not there.
  function diagnose() {
    fetch('/metrics' + tokenQuery, { cache: 'no-store' }).then((res) => {
      if (ws !== null || ui.globalError.hidden) return;   // reconnected meanwhile, or dismissed
      let text;
      if (res.status === 401) {
        text = token === null
          ? 'The server needs an access token: open this page as …/?token=YOUR_TOKEN.'
          : 'The server refused the access token in this page\'s address (?token=…).';
      } else if (res.ok) {
        text = 'The server answers HTTP but refused the WebSocket (/ws). If this page is not ' +
          'served by fwire serve itself, the server may need --allow-origin.';
      } else {
        text = 'Could not connect to the server (HTTP ' + res.status + ' from /metrics).';
      }
      showGlobalError(text);
      if (res.body) res.body.cancel().catch(() => {});
    }, () => {
      if (ws !== null || ui.globalError.hidden) return;
      showGlobalError('The server is not reachable. Is fwire serve running? ' +
        'Press Reconnect to try again.');
    });
  }

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function showGlobalError(text) {
    ui.globalErrorText.textContent = text;
    ui.globalError.hidden = false;
  }
  function hideGlobalError() {
    ui.globalError.hidden = true;
    ui.globalErrorText.textContent = '';
  }

  // ---------------------------------------------------------------- cards
  function makeCard(req, query) {
    const el = ui.template.content.firstElementChild.cloneNode(true);
    const q = (name) => el.querySelector('[data-testid="' + name + '"]');
    const card = {
      req, entity: query.entity, stream: null, state: 'starting', el,
      r: {
        entity: q('card-entity'), state: q('state'), pause: q('pause'), cancel: q('cancel'),
        close: q('close'), reqId: q('request-id'), streamId: q('stream-id'), params: q('params'),
        progress: q('progress'), fill: el.querySelector('.progress-fill'), percent: q('percent'),
        count: q('rows-count'), estimated: q('estimated'), rate: q('rate'), eta: q('eta'),
        batches: q('batches'), elapsed: q('elapsed'), summary: q('summary'), error: q('error'),
        errCode: q('error-code'), errSqlstate: q('error-sqlstate'),
        errSqlstateWrap: q('error-sqlstate-wrap'), errMessage: q('error-message'),
        rows: q('rows'), follow: q('follow'),
      },
      received: 0, batches: 0, estimated: null, serverPercent: null, serverRate: null,
      serverEta: null, totalRows: null, execMs: null,
      ring: [], ringDirty: false, cancelWanted: false,
      sentAt: performance.now(), firstRowAt: null, endedAt: null,
      shown: {},   // last text written into each element, to skip no-op DOM writes
    };
    el.id = 'stream-' + req;
    el.dataset.requestId = req;
    el.dataset.entity = query.entity;
    card.r.entity.textContent = query.entity;
    card.r.reqId.textContent = req;
    const bits = [];
    if (query.limit !== undefined) bits.push('limit ' + fmtInt(query.limit));
    if (query.batch_size !== undefined) bits.push('batch ' + fmtInt(query.batch_size));
    if (query.where !== undefined) bits.push('where ' + JSON.stringify(query.where));
    if (query.order_by !== undefined) {
      bits.push('order by ' + query.order_by.path + (query.order_by.desc ? ' desc' : ''));
    }
    card.r.params.textContent = bits.join(' · ');
    card.r.params.title = card.r.params.textContent;
    card.r.pause.addEventListener('click', () => togglePause(card));
    card.r.cancel.addEventListener('click', () => cancel(card));
    card.r.close.addEventListener('click', () => removeCard(card));
    card.r.follow.addEventListener('change', () => { card.ringDirty = true; touch(card); });
    const name = 'stream ' + req + ' (' + query.entity + ')';
    card.r.cancel.setAttribute('aria-label', 'Cancel ' + name);
    card.r.pause.setAttribute('aria-label', 'Pause ' + name);
    card.r.close.setAttribute('aria-label', 'Remove ' + name);
    card.r.follow.setAttribute('aria-label', 'Follow new rows of ' + name);
    card.r.progress.setAttribute('aria-label', 'Progress of ' + name);
    byRequest.set(req, card);
    ui.streams.prepend(el);
    updateCounts();
    setState(card, 'starting');
    return card;
  }

  function removeCard(card) {
    byRequest.delete(card.req);
    if (card.stream) byStream.delete(card.stream);
    dirty.delete(card);
    card.el.remove();
    updateCounts();
  }

  function updateCounts() {
    let finished = 0;
    for (const c of byRequest.values()) if (FINAL.has(c.state)) finished++;
    ui.count.textContent = String(byRequest.size);
    ui.count.dataset.active = String(byRequest.size - finished);
    ui.clear.disabled = finished === 0;
    ui.empty.hidden = byRequest.size > 0;
    const active = byRequest.size - finished;
    document.title = (active > 0 ? '(' + active + ' running) ' : '') + baseTitle;
  }

  function setState(card, state) {
    card.state = state;
    card.el.dataset.state = state;
    card.r.state.textContent = STATE_LABEL[state] || state;
    card.r.state.dataset.state = state;
    const final = FINAL.has(state);
    const p = card.r.pause;
    const canPause = state === 'running' || state === 'paused';
    p.disabled = !canPause;
    p.hidden = final;
    const resume = state === 'paused' || state === 'resuming';
    p.textContent = resume ? 'Resume' : 'Pause';
    p.setAttribute('aria-label',
      (resume ? 'Resume' : 'Pause') + ' stream ' + card.req + ' (' + card.entity + ')');
    p.setAttribute('aria-pressed', resume ? 'true' : 'false');
    card.r.cancel.disabled = final || state === 'cancelling';
    card.r.cancel.hidden = final;
    card.r.close.hidden = !final;
    if (final && card.endedAt === null) card.endedAt = performance.now();
    updateCounts();
    // Drawn at once, not at the next frame: whoever sees the new data-state sees the
    // counters and the progress that go with it.
    dirty.delete(card);
    draw(card);
  }

  function togglePause(card) {
    if (!card.stream) return;
    if (card.state === 'running') {
      if (send({ type: 'pause_query', stream_id: card.stream })) setState(card, 'pausing');
    } else if (card.state === 'paused') {
      if (send({ type: 'resume_query', stream_id: card.stream })) setState(card, 'resuming');
    }
  }

  function cancel(card) {
    if (FINAL.has(card.state) || card.state === 'cancelling') return;
    if (!card.stream) {           // no stream id yet: cancel as soon as query_started arrives
      card.cancelWanted = true;
      setState(card, 'cancelling');
      return;
    }
    if (send({ type: 'cancel_query', stream_id: card.stream })) setState(card, 'cancelling');
  }

  // ---------------------------------------------------------------- messages
  function cardFor(msg) {
    if (msg.stream_id != null && byStream.has(msg.stream_id)) return byStream.get(msg.stream_id);
    if (msg.request_id != null && byRequest.has(msg.request_id)) {
      return byRequest.get(msg.request_id);
    }
    return null;
  }

  function handle(msg) {
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'query_started': {
        const card = byRequest.get(msg.request_id);
        if (!card) return;
        card.stream = String(msg.stream_id);
        byStream.set(card.stream, card);
        card.el.dataset.streamId = card.stream;
        card.r.streamId.textContent =
          card.stream.length > 13 ? card.stream.slice(0, 8) + '…' : card.stream;
        card.r.streamId.title = card.stream;
        if (isNum(msg.estimated_rows)) card.estimated = msg.estimated_rows;
        if (card.cancelWanted) {
          if (send({ type: 'cancel_query', stream_id: card.stream })) setState(card, 'cancelling');
        } else if (card.state === 'starting') {
          setState(card, 'running');
        }
        touch(card);
        return;
      }
      case 'query_batch': {
        const card = cardFor(msg);
        if (!card) return;
        const rows = Array.isArray(msg.rows) ? msg.rows : [];
        const n = rows.length;
        if (n > 0 && card.firstRowAt === null) card.firstRowAt = performance.now();
        const from = n > KEEP_ROWS ? n - KEEP_ROWS : 0;
        for (let i = from; i < n; i++) {
          card.ring.push({ n: card.received + i + 1, v: rows[i], t: null });
        }
        if (card.ring.length > KEEP_ROWS) card.ring.splice(0, card.ring.length - KEEP_ROWS);
        card.received += n;
        card.batches++;
        if (n > 0) card.ringDirty = true;
        touch(card);
        return;
      }
      case 'query_progress': {
        const card = cardFor(msg);
        if (!card) return;
        card.serverPercent = isNum(msg.percentage) ? msg.percentage : null;
        card.serverRate = isNum(msg.rows_per_second) ? msg.rows_per_second : null;
        card.serverEta = isNum(msg.eta_seconds) ? msg.eta_seconds : null;
        if (isNum(msg.rows_processed)) card.processed = msg.rows_processed;
        touch(card);
        return;
      }
      case 'query_completed': {
        const card = cardFor(msg);
        if (!card) return;
        card.totalRows = isNum(msg.total_rows) ? msg.total_rows : card.received;
        card.execMs = isNum(msg.execution_time_ms) ? msg.execution_time_ms : null;
        setState(card, 'completed');
        return;
      }
      case 'query_cancelled': {
        const card = cardFor(msg);
        if (!card) return;
        setState(card, 'cancelled');
        return;
      }
      case 'query_paused': {
        const card = cardFor(msg);
        if (card && !FINAL.has(card.state) && card.state !== 'cancelling') {
          setState(card, 'paused');
        }
        return;
      }
      case 'query_resumed': {
        const card = cardFor(msg);
        if (card && !FINAL.has(card.state) && card.state !== 'cancelling') {
          setState(card, 'running');
        }
        return;
      }
      case 'query_error': {
        const card = cardFor(msg);
        const code = msg.code ? String(msg.code) : 'error';
        const text = msg.message ? String(msg.message) : '(no message)';
        if (!card || FINAL.has(card.state)) {
          // An error about no card we know, or about a stream that has already ended (say a
          // pause that crossed the completion): the banner, not the card.
          const where = card ? 'stream ' + card.req + ' (' + card.entity + '): ' : '';
          const sqlstate = msg.sqlstate ? ' [SQLSTATE ' + msg.sqlstate + ']' : '';
          showGlobalError(where + code + sqlstate + ': ' + text);
          return;
        }
        card.r.errCode.textContent = code;
        card.r.errSqlstate.textContent = msg.sqlstate ? String(msg.sqlstate) : '';
        card.r.errSqlstateWrap.hidden = !msg.sqlstate;
        card.r.errMessage.textContent = text;
        card.r.error.hidden = false;
        setState(card, 'error');
        return;
      }
      default:
        // Unknown types are ignored: a newer server may send more than this page knows.
        return;
    }
  }

  // ---------------------------------------------------------------- drawing
  function touch(card) {
    dirty.add(card);
    if (frameQueued) return;
    frameQueued = true;
    // requestAnimationFrame does not run in a hidden tab; the timer keeps counters moving there.
    const id = setTimeout(flush, 250);
    requestAnimationFrame(() => { clearTimeout(id); flush(); });
  }

  function flush() {
    if (!frameQueued) return;
    frameQueued = false;
    const cards = Array.from(dirty);
    dirty.clear();
    for (const card of cards) draw(card);
  }

  function put(card, key, el, text) {
    if (card.shown[key] === text) return;
    card.shown[key] = text;
    el.textContent = text;
  }

  function draw(card) {
    const r = card.r;
    const now = card.endedAt !== null ? card.endedAt : performance.now();
    const done = card.state === 'completed';
    const final = FINAL.has(card.state);

    // counters
    if (card.shown.count !== card.received) {
      card.shown.count = card.received;
      r.count.textContent = fmtInt(card.received);
      r.count.dataset.value = String(card.received);
    }
    put(card, 'batches', r.batches, fmtInt(card.batches));

    // progress
    // Against the planner's estimate: the share of it that has arrived (or the server's
    // percentage, the larger; both only grow), below 100 % until the stream completes. Past the
    // estimate there is no share to show: the bar turns indeterminate, the figures say so.
    const est = card.estimated;
    const past = !done && est !== null && card.received > est;
    let pct = null;
    if (done) pct = 100;
    else if (!past) {
      if (card.serverPercent !== null) pct = card.serverPercent;
      if (est !== null && est > 0) pct = Math.max(pct || 0, (card.received / est) * 100);
    }
    if (pct !== null) pct = Math.max(0, Math.min(100, pct));
    if (!done && pct !== null && pct >= 100) pct = 99.9;   // 100 % only once completed
    const pctKey = (pct === null ? 'none' : pct.toFixed(1)) + (final ? '/final' : '') +
      (past ? '/past' : '');
    if (card.shown.pct !== pctKey) {
      card.shown.pct = pctKey;
      if (pct === null) {
        r.progress.removeAttribute('aria-valuenow');
        r.progress.removeAttribute('data-percent');
        r.fill.style.width = '';
      } else {
        r.progress.setAttribute('aria-valuenow', pct.toFixed(1));
        r.progress.dataset.percent = pct.toFixed(1);
        r.fill.style.width = pct + '%';
      }
      r.progress.dataset.estimatePassed = past ? 'true' : 'false';
      r.percent.textContent = past ? 'past the estimate'
        : pct === null ? (final ? '–' : '…') : (done ? '' : '~') + fmtPercent(pct);
    }
    r.progress.classList.toggle('indeterminate', pct === null && !final);
    r.progress.dataset.state = card.state;
    put(card, 'estimated', r.estimated,
      est === null ? 'unknown' : '~' + fmtInt(est) + (past ? ' (passed)' : ''));

    // rate, ETA, elapsed
    // The rate is measured here, from the first batch on: the rows received over the time
    // since the query was sent (the server's own figure lags a progress period behind).
    const elapsedSec = (now - card.sentAt) / 1000;
    let rate = null;   // rows per second
    if (done && card.execMs !== null && card.execMs > 0) {
      rate = card.totalRows / (card.execMs / 1000);
    } else if (card.received > 0 && elapsedSec > 0) {
      rate = card.received / elapsedSec;
    }
    if (card.state === 'paused') rate = null;
    put(card, 'rate', r.rate, rate === null ? '–' : fmtInt(rate));
    let eta = null;
    if (done) eta = 0;
    else if (!final && !past && est !== null && rate) {
      eta = Math.max(0, est - card.received) / rate;
    }
    put(card, 'eta', r.eta,
      done ? 'done' : card.state === 'paused' ? 'paused'
        : eta === null ? '–' : '~' + fmtDuration(eta, false));
    const shownElapsed = done && card.execMs !== null ? card.execMs / 1000 : elapsedSec;
    put(card, 'elapsed', r.elapsed, fmtDuration(shownElapsed, true));

    // summary line
    let summary = '';
    if (done) {
      summary = 'Completed: ' + fmtInt(card.totalRows) + ' rows' +
        (card.execMs !== null ? ' in ' + fmtDuration(card.execMs / 1000, true) : '') +
        (card.totalRows !== card.received ? ' (received ' + fmtInt(card.received) + ')' : '') + '.';
      r.summary.dataset.totalRows = String(card.totalRows);
      if (card.execMs !== null) r.summary.dataset.executionMs = String(card.execMs);
    } else if (card.state === 'cancelled') {
      summary = 'Cancelled after ' + fmtInt(card.received) + ' rows.';
    } else if (card.state === 'disconnected') {
      summary = 'The connection closed after ' + fmtInt(card.received) + ' rows.';
    }
    put(card, 'summary', r.summary, summary);
    r.summary.hidden = summary === '';
    r.summary.dataset.kind = card.state;

    // the rows box
    if (card.ringDirty && r.follow.checked) {
      card.ringDirty = false;
      const last = card.ring.length ? card.ring[card.ring.length - 1].n : 0;
      const width = String(last).length;
      let text = '';
      for (let i = 0; i < card.ring.length; i++) {
        const e = card.ring[i];
        if (e.t === null) e.t = rowText(e.v);
        text += (i ? '\n' : '') + String(e.n).padStart(width, ' ') + '  ' + e.t;
      }
      r.rows.textContent = text;
      r.rows.scrollTop = r.rows.scrollHeight;
    }
  }

  // elapsed time of running streams
  setInterval(() => {
    for (const c of byRequest.values()) if (!FINAL.has(c.state)) touch(c);
  }, TICK_MS);

  // ---------------------------------------------------------------- the form
  function formError(text) {
    ui.formError.textContent = text;
    ui.formError.hidden = !text;
  }

  function intField(input, min, name) {
    const s = input.value.trim();
    if (s === '') return { value: undefined };
    if (!/^\d+$/.test(s) || Number(s) < min || !Number.isSafeInteger(Number(s))) {
      const least = min > 0 ? ' of at least ' + min : '';
      return { error: name + ' must be a whole number' + least + '.' };
    }
    return { value: Number(s) };
  }

  // ---------------------------------------------------------------- conditions
  // A value is JSON when it parses as JSON (10, true, "10", {"a":1}), else text (Bob Smith).
  function condValue(text) {
    try { return JSON.parse(text); } catch (e) { return text; }
  }

  function addCond(path, op, value) {
    const row = ui.condTemplate.content.firstElementChild.cloneNode(true);
    const opSel = row.querySelector('.cond-op');
    const val = row.querySelector('.cond-value');
    row.querySelector('.cond-path').value = path || '';
    opSel.value = op || 'eq';
    val.value = value || '';
    const sync = () => {
      const none = opSel.value === 'is_null' || opSel.value === 'is_not_null';
      val.disabled = none;
      val.placeholder = none ? '' : opSel.value === 'in' ? 'a, b, c' : 'value';
    };
    opSel.addEventListener('change', sync);
    sync();
    row.querySelector('.cond-remove').addEventListener('click', () => {
      row.remove();
      if (!ui.condList.firstElementChild) addCond();
    });
    ui.condList.appendChild(row);
    return row;
  }

  // The conditions of the form as the where array of stream_query, or {error, focus}.
  function condWhere() {
    const where = [];
    for (const row of ui.condList.querySelectorAll('[data-testid="condition"]')) {
      const pathEl = row.querySelector('.cond-path');
      const valEl = row.querySelector('.cond-value');
      const path = pathEl.value.trim();
      const op = row.querySelector('.cond-op').value;
      const text = valEl.value.trim();
      if (path === '') {
        if (text !== '') return { error: 'A condition has a value but no path.', focus: pathEl };
        continue;
      }
      const p = { path, op };
      if (op === 'in') {
        p.value = text === '' ? [] : text.split(',').map((v) => condValue(v.trim()));
      } else if (op !== 'is_null' && op !== 'is_not_null') {
        if (text === '') return { error: 'The condition on ' + path + ' needs a value.', focus: valEl };
        p.value = op === 'like' || op === 'ilike' || op === 'has_key' ? text : condValue(text);
      }
      where.push(p);
    }
    return { where };
  }

  ui.addCond.addEventListener('click', () => addCond().querySelector('.cond-path').focus());
  addCond();

  // ---------------------------------------------------------------- entity suggestions
  // The server's --allow list (GET /entities, which takes the same token as /ws).
  function loadEntities() {
    fetch('/entities' + tokenQuery, { cache: 'no-store' })
      .then((res) => (res.ok ? res.json() : null))
      .then((body) => {
        if (!body || !Array.isArray(body.entities)) return;
        ui.entityList.textContent = '';
        for (const name of body.entities) {
          const o = document.createElement('option');
          o.value = String(name);
          ui.entityList.appendChild(o);
        }
        ui.entityList.dataset.loaded = 'true';
        if (ui.entity.value === '' && body.entities.length > 0) {
          ui.entity.value = String(body.entities[0]);
        }
      })
      .catch(() => {});   // no suggestions: the field still takes any name
  }
  loadEntities();

  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    formError('');
    const entity = ui.entity.value.trim();
    if (!entity) { formError('Enter an entity, e.g. fixture.'); ui.entity.focus(); return; }
    const limit = intField(ui.limit, 0, 'Limit');
    if (limit.error) { formError(limit.error); ui.limit.focus(); return; }
    const batch = intField(ui.batch, 1, 'Batch size');
    if (batch.error) { formError(batch.error); ui.batch.focus(); return; }
    const query = { type: 'stream_query', request_id: 'r' + nextRequest, entity };
    const conds = condWhere();
    if (conds.error) {
      formError(conds.error);
      document.getElementById('more-options').open = true;
      if (conds.focus) conds.focus.focus();
      return;
    }
    let where = conds.where;
    const whereText = ui.where.value.trim();
    if (whereText) {
      let extra;
      try { extra = JSON.parse(whereText); } catch (e) { extra = null; }
      if (!Array.isArray(extra)) {
        formError('Where must be a JSON array such as [{"path":"id","op":"gt","value":10}].');
        document.getElementById('more-options').open = true;
        ui.where.focus();
        return;
      }
      where = where.concat(extra);
    }
    if (where.length > 0) query.where = where;
    const orderPath = ui.orderBy.value.trim();
    if (orderPath) query.order_by = { path: orderPath, desc: ui.orderDesc.checked };
    if (limit.value !== undefined) query.limit = limit.value;
    if (batch.value !== undefined) query.batch_size = batch.value;
    if (!send(query)) { formError('Not connected to the server.'); return; }
    nextRequest++;
    makeCard(query.request_id, query);
    if (!Array.from(ui.entityList.options).some((o) => o.value === entity)) {
      const o = document.createElement('option');
      o.value = entity;
      ui.entityList.appendChild(o);
    }
  });

  ui.reconnect.addEventListener('click', connect);
  ui.globalErrorDismiss.addEventListener('click', hideGlobalError);
  ui.clear.addEventListener('click', () => {
    for (const c of Array.from(byRequest.values())) if (FINAL.has(c.state)) removeCard(c);
  });

  window.fwirePage = {
    socket: () => ws,
    state: () => Array.from(byRequest.values()).map((c) => ({
      request_id: c.req, stream_id: c.stream, entity: c.entity, state: c.state,
      received: c.received, batches: c.batches, estimated: c.estimated, total_rows: c.totalRows,
    })),
  };

  connect();
})();
