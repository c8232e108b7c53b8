// The dashboard's charts (console/pages/dashpage.py): Apache ECharts, drawn from the JSON
// block #dash-data that the page and every poll of its figures bring (no inline script: the
// CSP runs only this origin's files). Tooltips are drawn in the canvas (renderMode
// "richText"): ECharts' HTML tooltips carry style attributes the CSP refuses.
(function () {
  "use strict";
  var FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif";
  var COLORS = ["#b8c4d6", "#2f6fdf", "#1a7f37", "#e0a030", "#b3261e", "#8250df", "#57606a"];
  var charts = {};

  function readData() {
    var el = document.getElementById("dash-data");
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  // Amounts as officials read them: 8.7亿, 4,800万, 3,000元 (fen in, words out).
  function cn(fen, zh) {
    var y = fen / 100, a = Math.abs(y);
    if (a >= 1e8) return (Math.round(y / 1e6) / 100) + "亿";
    if (a >= 1e4) return Math.round(y / 1e4).toLocaleString("en-US") + "万";
    return (Math.round(y * 100) / 100).toLocaleString("en-US") + (zh ? "元" : " yuan");
  }
  function exact(fen) {
    var s = (Math.abs(fen) / 100).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    return (fen < 0 ? "-" : "") + "¥" + s;
  }

  function narrow(el) { return el.clientWidth < 520; }

  function base(el, d) {
    return {
      animation: false,
      color: COLORS,
      textStyle: {fontFamily: FONT},
      tooltip: {trigger: "axis", renderMode: "richText", confine: true,
                valueFormatter: function (v) { return exact(v); }},
      legend: {top: 0, type: narrow(el) ? "scroll" : "plain"},
      grid: {left: 10, right: 20, top: 40, bottom: 10, containLabel: true}
    };
  }

  function moneyAxis(d) {
    return {type: "value", axisLabel: {formatter: function (v) { return cn(v, d.lang === "zh"); }}};
  }

  function bars(el, d, rows, horizontal) {
    if (!rows.length) return empty(el, d);
    var names = rows.map(function (r) { return r[0]; });
    var o = base(el, d);
    var cat = {type: "category", data: names,
               axisLabel: {interval: 0, width: narrow(el) ? 90 : 160, overflow: "truncate"}};
    if (horizontal) {  // room on the right for the last amount on the axis
      cat.inverse = true; o.xAxis = moneyAxis(d); o.yAxis = cat; o.grid.right = 40;
    }
    else { o.xAxis = cat; o.yAxis = moneyAxis(d); }
    o.series = [
      {name: d.series.planned, type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r[1]; })},
      {name: d.series.issued, type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r[2]; })},
      {name: d.series.redeemed, type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r[3]; })}
    ];
    return o;
  }

  function empty(el, d) {  // nothing yet: say so instead of a grey ring
    return {animation: false, textStyle: {fontFamily: FONT},
            title: {text: d.empty, left: "center", top: "middle",
                    textStyle: {fontSize: 14, fontWeight: "normal", color: "#57606a", fontFamily: FONT}}};
  }

  function pie(el, d, rows) {
    if (!rows.length) return empty(el, d);
    var o = base(el, d);
    o.tooltip = {trigger: "item", renderMode: "richText", confine: true,
                 valueFormatter: function (v) { return exact(v); }};
    o.series = [{type: "pie", radius: narrow(el) ? ["30%", "60%"] : ["35%", "65%"], top: 30,
                 avoidLabelOverlap: true,
                 label: {formatter: function (p) { return p.name + "\n" + p.percent.toFixed(1) + "%"; }},
                 data: rows.map(function (r) { return {name: r[0], value: r[1]}; })}];
    o.legend.show = false;
    return o;
  }

  function daily(el, d) {
    if (!d.day.length) return empty(el, d);
    var o = base(el, d);
    o.xAxis = {type: "category", data: d.day.map(function (r) { return r[0]; })};
    o.yAxis = moneyAxis(d);
    o.dataZoom = d.day.length > 31 ? [{type: "inside"}] : [];
    o.series = [
      {name: d.series.issued, type: "bar", data: d.day.map(function (r) { return r[1]; }), itemStyle: {color: COLORS[1]}, barMaxWidth: 36},
      {name: d.series.redeemed, type: "line", data: d.day.map(function (r) { return r[2]; }), itemStyle: {color: COLORS[2]}, showSymbol: d.day.length < 40}
    ];
    return o;
  }

  var SPECS = {
    "chart-level": function (el, d) { return bars(el, d, d.level, false); },
    "chart-children": function (el, d) { return bars(el, d, d.children, true); },
    "chart-category": function (el, d) { return pie(el, d, d.category); },
    "chart-channel": function (el, d) { return pie(el, d, d.channel); },
    "chart-day": daily
  };

  function draw() {
    var d = readData();
    if (!d || !window.echarts) return;
    var n = 0;
    Object.keys(SPECS).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) return;
      if (id === "chart-children") {  // as many rows as bars, so labels never overlap
        el.style.height = Math.max(260, 40 + 28 * d.children.length) + "px";
      }
      var chart = charts[id] || echarts.init(el, null, {renderer: "canvas", locale: d.lang === "zh" ? "ZH" : "EN"});
      charts[id] = chart;
      chart.resize();
      chart.setOption(SPECS[id](el, d), true);
      n += 1;
    });
    document.documentElement.dataset.chartsReady = String(n);
  }

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () { pending = null; draw(); }, 100);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "dash-live") draw();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
