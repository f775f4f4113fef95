// heapscope report: lays out the data embedded in #heapscope-data.
// Every string from the traced program is written with textContent, never as
// markup. Sizes come pre-formatted from Python (the standard module's units);
// the raw numbers beside them are what the tables sort by.
(function () {
  'use strict';

  var data = JSON.parse(document.getElementById('heapscope-data').textContent);
  var filenames = data.filenames;
  var frames = data.frames;          // [filename index, lineno, function, source]
  var summary = data.summary;
  var ROOT_FRAME = -1;
  var SMALLER_FRAME = -2;

  // ---- small helpers -------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function basename(path) {
    var cut = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
    return path.slice(cut + 1) || path;
  }

  function groupDigits(n) {
    var sign = n < 0 ? '-' : '';
    var digits = String(Math.round(Math.abs(n)));
    return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function signedCount(n) {
    return (n > 0 ? '+' : '') + groupDigits(n);
  }

  function percent(fraction) {
    var value = fraction * 100;
    return (value !== 0 && Math.abs(value) < 0.1 ? value.toFixed(2) : value.toFixed(1)) + '%';
  }

  function frameInfo(id) {
    var frame = frames[id];
    var file = filenames[frame[0]];
    return { func: frame[2], file: file, line: frame[1], src: frame[3] };
  }

  // "function (file.py:12)"; just "file.py:12" when the function is unknown
  // (the source module names it after the file then).
  function frameLabel(info) {
    var where = basename(info.file) + ':' + info.line;
    if (!info.func || info.func === basename(info.file)) return where;
    return info.func + ' (' + where + ')';
  }

  // Text that may wrap after each separator (the dots of Class.method, the
  // slashes of a directory), and nowhere else.
  function appendBreakable(parent, text, separator) {
    text.split(separator).forEach(function (part, index) {
      if (index) {
        parent.appendChild(document.createTextNode(separator));
        parent.appendChild(document.createElement('wbr'));
      }
      parent.appendChild(document.createTextNode(part));
    });
  }

  function fillName(td, name) {
    appendBreakable(td, name, '.');
  }

  // A path as its base name, with the directory in small print below.
  function fillPath(td, path, suffix) {
    var base = basename(path);
    td.appendChild(el('span', 'base', base + suffix));
    var dir = path.slice(0, path.length - base.length);
    if (dir) {
      var dirSpan = el('span', 'dir');
      appendBreakable(dirSpan, dir, '/');
      td.appendChild(dirSpan);
    }
    td.title = path + suffix;
  }

  function hashString(text) {
    var hash = 2166136261;
    for (var i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 16777619);
    }
    return hash >>> 0;
  }

  // ---- header --------------------------------------------------------------

  function statCard(label, value, sub, extraClass) {
    var card = el('div', 'stat' + (extraClass ? ' ' + extraClass : ''));
    card.appendChild(el('div', 'label', label));
    card.appendChild(el('div', 'value', value));
    if (sub) card.appendChild(el('div', 'sub', sub));
    return card;
  }

  function note(text) {
    document.getElementById('notes').appendChild(el('p', 'note', text));
  }

  function renderHeader() {
    var box = document.getElementById('summary');
    var sizeSub = data.diff
      ? 'was ' + summary.old_size_text + ' (' + summary.size_diff_text + ')' : '';
    box.appendChild(statCard('Total size', summary.size_text, sizeSub));
    box.appendChild(statCard('Blocks', groupDigits(summary.count),
      data.diff ? signedCount(summary.count_diff) + ' since old' : ''));
    box.appendChild(statCard('Traces', groupDigits(summary.traces),
      summary.sample_interval ? 'sampled' : ''));
    box.appendChild(statCard('Traceback limit', summary.traceback_limit,
      summary.traceback_limit === 1 ? 'frame' : 'frames'));
    box.appendChild(statCard('Source files', groupDigits(summary.files),
      groupDigits(summary.lines) + ' lines'));
    if (summary.sample_interval) {
      box.appendChild(statCard('Sample interval', summary.sample_interval_text, 'mean, by bytes'));
    }
    if (summary.snapshot_name || summary.old_name) {
      var card = el('div', 'stat files');
      card.appendChild(el('div', 'label', data.diff ? 'Snapshots (new, old)' : 'Snapshot'));
      if (summary.snapshot_name) card.appendChild(el('div', 'value', summary.snapshot_name));
      if (summary.old_name) card.appendChild(el('div', 'value', summary.old_name));
      box.appendChild(card);
    }

    if (summary.count === 0) {
      note('This snapshot holds no traced memory: nothing was allocated while tracing, ' +
           'or everything was freed before the snapshot.');
    }
    if (data.diff) {
      note('Compared with an older snapshot: growth is red, shrinkage green. ' +
           'Tables list the biggest changes first.');
    }
    if (summary.sample_interval) {
      note('Sampled snapshot: about one block per ' + summary.sample_interval_text +
           ' allocated was recorded, so sizes and counts are estimates; ' +
           'their 95% confidence intervals are shown in small print.');
    }
  }

  // ---- flame graph ---------------------------------------------------------

  var ROW = 20;
  var flameBox = document.getElementById('flame');
  var tooltip = document.getElementById('tooltip');
  var resetButton = document.getElementById('flame-reset');
  var nodes = [];
  var zoomed = null;
  var maxAbsDiff = 0;
  var highlight = '';

  function buildTree() {
    data.flame.nodes.forEach(function (raw, index) {
      var parent = raw[1] >= 0 ? nodes[raw[1]] : null;
      var node = {
        index: index, frame: raw[0], parent: parent,
        size: raw[2], count: raw[3], sizeText: raw[4], diff: raw[5], diffText: raw[6],
        children: [], depth: parent ? parent.depth + 1 : 0
      };
      node.info = node.frame >= 0 ? frameInfo(node.frame) : null;
      node.search = node.info
        ? (node.info.func + ' ' + node.info.file + ':' + node.info.line + ' ' + node.info.src).toLowerCase()
        : '';
      if (parent) parent.children.push(node);
      if (parent && Math.abs(node.diff) > maxAbsDiff) maxAbsDiff = Math.abs(node.diff);
      nodes.push(node);
    });
  }

  function nodeLabel(node) {
    if (node.frame === ROOT_FRAME) return 'all: ' + node.sizeText;
    if (node.frame === SMALLER_FRAME) return 'smaller frames';
    return frameLabel(node.info);
  }

  function nodeColour(node) {
    if (data.diff && node.frame !== ROOT_FRAME) {
      if (!node.diff || !maxAbsDiff) return 'hsl(220, 12%, 84%)';
      var strength = Math.sqrt(Math.min(1, Math.abs(node.diff) / maxAbsDiff));
      return node.diff > 0
        ? 'hsl(0, 78%, ' + (90 - 32 * strength) + '%)'
        : 'hsl(135, 50%, ' + (88 - 32 * strength) + '%)';
    }
    if (node.frame === ROOT_FRAME) return 'hsl(28, 20%, 78%)';
    if (node.frame === SMALLER_FRAME) return 'hsl(220, 10%, 78%)';
    // Warm flame colours: the file picks the hue, the function the shade.
    var hue = 8 + hashString(node.info.file) % 38;
    var light = 60 + hashString(node.info.func || '') % 14;
    return 'hsl(' + hue + ', 85%, ' + light + '%)';
  }

  function matches(node) {
    return highlight !== '' && node.search.indexOf(highlight) !== -1;
  }

  function placeBar(node, left, width, className) {
    var bar = el('div', 'bar' + (className ? ' ' + className : ''));
    bar.style.left = left + 'px';
    bar.style.width = Math.max(width - 1, 1) + 'px';
    bar.style.top = node.depth * ROW + 'px';
    bar.style.background = nodeColour(node);
    bar.dataset.node = node.index;
    if (width >= 28) bar.textContent = nodeLabel(node);
    if (highlight !== '') bar.classList.add(matches(node) ? 'match' : 'dim');
    flameBox.appendChild(bar);
  }

  function renderFlame() {
    flameBox.textContent = '';
    if (!nodes.length || nodes[0].size <= 0) {
      flameBox.style.height = 'auto';
      flameBox.appendChild(el('div', 'empty', 'No traced memory in this snapshot.'));
      return;
    }
    var width = flameBox.clientWidth;
    var top = zoomed || nodes[0];
    for (var up = top.parent; up; up = up.parent) placeBar(up, 0, width, 'ancestor');
    var deepest = top.depth;
    var pending = [[top, 0, width]];
    while (pending.length) {
      var item = pending.pop();
      var node = item[0], left = item[1], span = item[2];
      placeBar(node, left, span, '');
      if (node.depth > deepest) deepest = node.depth;
      var x = left;
      for (var i = 0; i < node.children.length; i++) {
        var child = node.children[i];
        var childSpan = span * child.size / node.size;
        // Narrower than a pixel: not drawn (stated under the graph).
        if (childSpan >= 1) pending.push([child, x, childSpan]);
        x += childSpan;
      }
    }
    flameBox.style.height = (deepest + 1) * ROW + 'px';
    resetButton.disabled = !zoomed;
  }

  function tooltipRow(parent, label, value, className) {
    var line = el('div', className);
    line.appendChild(el('span', '', label + ': '));
    line.appendChild(el('b', '', value));
    parent.appendChild(line);
  }

  function showTooltip(node, event) {
    tooltip.textContent = '';
    tooltip.appendChild(el('div', 'fn', node.info ? (node.info.func || '?') : nodeLabel(node)));
    if (node.info) {
      tooltip.appendChild(el('div', 'loc', node.info.file + ':' + node.info.line));
      if (node.info.src) tooltip.appendChild(el('code', '', node.info.src));
    }
    var root = nodes[0];
    tooltipRow(tooltip, 'Size', node.sizeText + ' (' + percent(node.size / root.size) + ' of all)');
    if (zoomed && zoomed !== root && node.depth >= zoomed.depth) {
      tooltipRow(tooltip, 'Of zoomed frame', percent(node.size / zoomed.size));
    }
    tooltipRow(tooltip, 'Blocks', groupDigits(node.count));
    if (data.diff) {
      tooltipRow(tooltip, 'Change', node.diffText,
        node.diff > 0 ? 'grow' : node.diff < 0 ? 'shrink' : '');
    }
    tooltip.hidden = false;
    var x = event.clientX + 14, y = event.clientY + 16;
    var box = tooltip.getBoundingClientRect();
    if (x + box.width > window.innerWidth - 8) x = Math.max(8, event.clientX - box.width - 14);
    if (y + box.height > window.innerHeight - 8) y = Math.max(8, event.clientY - box.height - 16);
    tooltip.style.left = x + 'px';
    tooltip.style.top = y + 'px';
  }

  function nodeOfEvent(event) {
    var target = event.target;
    if (!target.classList || !target.classList.contains('bar')) return null;
    return nodes[Number(target.dataset.node)];
  }

  function setupFlame() {
    buildTree();
    var hint = document.getElementById('flame-hint');
    var text = 'Each bar is a frame; its width is the size allocated under it. ' +
      'The outermost frame is on top and the line that allocated at the bottom of each stack. ' +
      'Click a bar to zoom in, hover for details.';
    if (summary.traceback_limit === 1) {
      text = 'The snapshot was taken with a traceback limit of 1, so each traceback is only ' +
        'the line that allocated and the graph has a single level (still the biggest lines, side ' +
        'by side). Trace with more frames to see the call stacks: heapscope.start(25), or ' +
        'python -m heapscope run -n 25. ' +
        'Hover for details.';
    }
    if (data.diff) {
      text += ' Colour: red grew and green shrank since the old snapshot (deeper colour, bigger ' +
        'change); width is the new size, so code whose memory was all freed has no bar: see the tables.';
    }
    hint.textContent = text;

    var flame = data.flame;
    if (summary.count === 0) hint.textContent = '';
    var limits = [groupDigits(flame.tracebacks) + ' distinct tracebacks.'];
    if (flame.merged) {
      limits.push('To keep the page small the graph has the ' +
        groupDigits(data.limits.flame_bars) + ' biggest of ' +
        (flame.capacity_reached ? 'more than ' : '') + groupDigits(flame.frames) +
        ' frames; the others are merged into grey \u201csmaller frames\u201d bars, ' +
        'so widths still add up.');
    }
    limits.push('Bars narrower than a pixel are not drawn: zoom in to see them.');
    if (summary.count === 0) limits = [];
    document.getElementById('flame-limits').textContent = limits.join(' ');

    flameBox.addEventListener('mousemove', function (event) {
      var node = nodeOfEvent(event);
      if (node) showTooltip(node, event); else tooltip.hidden = true;
    });
    flameBox.addEventListener('mouseleave', function () { tooltip.hidden = true; });
    flameBox.addEventListener('click', function (event) {
      var node = nodeOfEvent(event);
      if (!node) return;
      zoomed = node.parent ? node : null;
      tooltip.hidden = true;
      renderFlame();
    });
    resetButton.addEventListener('click', function () { zoomed = null; renderFlame(); });
    document.getElementById('flame-search').addEventListener('input', function (event) {
      highlight = event.target.value.trim().toLowerCase();
      renderFlame();
    });
    var pendingResize = 0;
    window.addEventListener('resize', function () {
      clearTimeout(pendingResize);
      pendingResize = setTimeout(renderFlame, 100);
    });
    renderFlame();
  }

  // ---- tables --------------------------------------------------------------

  function numberCell(td, text, ciText) {
    td.appendChild(document.createTextNode(text));
    if (ciText) td.appendChild(el('span', 'ci', ciText));
  }

  function changeClass(value) {
    return value > 0 ? 'grow' : value < 0 ? 'shrink' : '';
  }

  var amountColumns = [
    { key: 'size', label: 'Size', num: true,
      value: function (row) { return row.size; },
      fill: function (td, row) { numberCell(td, row.size_text, row.size_ci_text); } },
    { key: 'share', label: 'Share', num: true, className: 'share',
      value: function (row) { return row.share; },
      fill: function (td, row) {
        var track = el('span', 'track');
        var fill = el('span', 'fill');
        fill.style.width = (100 * Math.max(0, Math.min(1, row.share))) + '%';
        track.appendChild(fill);
        td.appendChild(track);
        td.appendChild(el('span', 'pct', percent(row.share)));
      } },
    { key: 'count', label: 'Count', num: true,
      value: function (row) { return row.count; },
      fill: function (td, row) { numberCell(td, groupDigits(row.count), row.count_ci_text); } },
    { key: 'average', label: 'Average', num: true,
      value: function (row) { return row.count ? row.size / row.count : 0; },
      fill: function (td, row) { td.textContent = row.average_text; } }
  ];
  var diffColumns = [
    { key: 'size_diff', label: '\u0394 Size', num: true,
      value: function (row) { return row.size_diff; },
      cellClass: function (row) { return changeClass(row.size_diff); },
      fill: function (td, row) { numberCell(td, row.size_diff_text, row.size_diff_ci_text); } },
    { key: 'count_diff', label: '\u0394 Count', num: true,
      value: function (row) { return row.count_diff; },
      cellClass: function (row) { return changeClass(row.count_diff); },
      fill: function (td, row) { numberCell(td, signedCount(row.count_diff), row.count_diff_ci_text); } }
  ];

  function compareText(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

  var lineColumns = [
    { key: 'function', label: 'Function', className: 'fn',
      value: function (row) { return row.info.func || ''; },
      fill: function (td, row) { fillName(td, row.info.func || '?'); } },
    { key: 'location', label: 'Location', className: 'loc',
      value: function (row) { return row.info.file; },
      then: function (row) { return row.info.line; },
      fill: function (td, row) { fillPath(td, row.info.file, ':' + row.info.line); } },
    { key: 'source', label: 'Source line', className: 'src',
      value: function (row) { return row.info.src; },
      fill: function (td, row) {
        if (row.info.src) td.textContent = row.info.src;
        else td.appendChild(el('span', 'missing', 'source not available'));
      } }
  ];
  var fileColumns = [
    { key: 'file', label: 'File', className: 'loc',
      value: function (row) { return row.file; },
      fill: function (td, row) { fillPath(td, row.file, ''); } }
  ];

  function makeTable(name, spec, columns, describe) {
    var table = document.getElementById('table-' + name);
    var rows = spec.rows.map(function (row, order) {
      describe(row);
      row.order = order;
      return row;
    });
    var state = { name: name, table: table, rows: rows, spec: spec, columns: columns,
                  sortKey: data.diff ? null : 'size', descending: true, query: '' };

    var head = el('thead');
    var headRow = el('tr');
    columns.forEach(function (column) {
      var th = el('th', column.num ? 'num' : '', column.label);
      th.dataset.key = column.key;
      th.title = 'Sort by ' + column.label.toLowerCase();
      th.tabIndex = 0;
      th.addEventListener('click', function () {
        if (state.sortKey === column.key) {
          state.descending = !state.descending;
        } else {
          state.sortKey = column.key;
          state.descending = !!column.num;  // numbers biggest first, text A to Z
        }
        renderRows(state);
      });
      th.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          th.click();
        }
      });
      headRow.appendChild(th);
    });
    head.appendChild(headRow);
    table.appendChild(head);
    table.appendChild(el('tbody'));
    renderRows(state);
    return state;
  }

  function sortRows(state) {
    var rows = state.rows.slice();
    var column = null;
    state.columns.forEach(function (candidate) {
      if (candidate.key === state.sortKey) column = candidate;
    });
    if (!column) return rows;
    var direction = state.descending ? -1 : 1;
    rows.sort(function (a, b) {
      var order = column.num ? column.value(a) - column.value(b)
                             : compareText(column.value(a), column.value(b));
      if (!order && column.then) order = column.then(a) - column.then(b);
      // Ties keep the report's own order (biggest first) in both directions.
      return order ? order * direction : a.order - b.order;
    });
    return rows;
  }

  function renderRows(state) {
    var query = state.query;
    var visible = sortRows(state).filter(function (row) {
      return !query || row.search.indexOf(query) !== -1;
    });
    var body = el('tbody');
    visible.forEach(function (row) {
      var tr = el('tr');
      state.columns.forEach(function (column) {
        var classes = [column.num ? 'num' : '', column.className || '',
                       column.cellClass ? column.cellClass(row) : ''];
        var td = el('td', classes.filter(Boolean).join(' '));
        td.dataset.key = column.key;
        if (column.num) td.dataset.value = column.value(row);
        column.fill(td, row);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (!visible.length) {
      var empty = el('tr', 'empty-row');
      var cell = el('td', '', state.rows.length ? 'No rows match the filter.' : 'No rows: nothing traced.');
      cell.colSpan = state.columns.length;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    state.table.replaceChild(body, state.table.tBodies[0]);
    state.table.querySelectorAll('th').forEach(function (th) {
      if (th.dataset.key === state.sortKey) {
        th.setAttribute('aria-sort', state.descending ? 'descending' : 'ascending');
      } else {
        th.removeAttribute('aria-sort');
      }
    });
    state.visibleCount = visible.length;
    if (state === currentTable) describeTable();
  }

  var tables = {};
  var currentTable = null;

  function describeTable() {
    var state = currentTable;
    var shown = state.visibleCount;
    var text = state.query
      ? groupDigits(shown) + ' of ' + groupDigits(state.rows.length) + ' rows match'
      : groupDigits(state.rows.length) + ' rows';
    document.getElementById('row-count').textContent = text;
    var limits = document.getElementById('table-limits');
    limits.textContent = state.spec.hidden_rows
      ? groupDigits(state.spec.hidden_rows) + ' more rows not shown (' +
        state.spec.hidden_size_text + ' in all): the table keeps the ' +
        groupDigits(data.limits.table_rows) + (data.diff ? ' biggest changes.' : ' biggest rows.')
      : '';
  }

  function selectTable(name) {
    currentTable = tables[name];
    Object.keys(tables).forEach(function (other) {
      document.getElementById('wrap-' + other).hidden = other !== name;
      document.getElementById('tab-' + other).setAttribute('aria-selected', String(other === name));
    });
    var search = document.getElementById('table-search');
    if (search.value.trim().toLowerCase() !== currentTable.query) {
      currentTable.query = search.value.trim().toLowerCase();
      renderRows(currentTable);
    }
    describeTable();
  }

  function setupTables() {
    var extra = data.diff ? diffColumns : [];
    tables.lines = makeTable('lines', data.lines, lineColumns.concat(amountColumns, extra),
      function (row) {
        row.info = frameInfo(row.ref);
        row.search = (row.info.func + ' ' + row.info.file + ':' + row.info.line + ' ' +
                      row.info.src).toLowerCase();
      });
    tables.files = makeTable('files', data.files, fileColumns.concat(amountColumns, extra),
      function (row) {
        row.file = filenames[row.ref];
        row.search = row.file.toLowerCase();
      });
    document.querySelectorAll('.tab').forEach(function (tab) {
      tab.addEventListener('click', function () { selectTable(tab.dataset.table); });
    });
    document.getElementById('table-search').addEventListener('input', function (event) {
      currentTable.query = event.target.value.trim().toLowerCase();
      renderRows(currentTable);
    });
    selectTable('lines');
  }

  // ---- page ----------------------------------------------------------------

  renderHeader();
  setupFlame();
  setupTables();
  document.getElementById('footer').textContent =
    'Made by heapscope ' + data.version + '. This page is self-contained: it loads nothing ' +
    'from the network. Source lines are read from the files as they are now.';
}());
