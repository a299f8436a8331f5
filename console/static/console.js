// Draws every chart of a page from the Vega-Lite specs the server embedded (console/charts.py), with the
// vega-embed bundle served by the console itself. Tables carry the same figures without JavaScript.
const specs = JSON.parse(document.getElementById("specs")?.textContent || "{}");
const draw = async () => {
  for (const element of document.querySelectorAll(".chart[data-spec]")) {
    const spec = specs[element.dataset.spec];
    if (!spec || !window.vegaEmbed) continue;
    try {
      await window.vegaEmbed(element, spec, { actions: false, renderer: "svg" });
      element.dataset.drawn = "true";
    } catch (error) {
      element.dataset.drawn = "failed";
      element.textContent = "This chart could not be drawn: " + error;
      console.error("chart", element.dataset.spec, error);
    }
  }
  document.body.dataset.chartsDrawn = "true";
};
if (window.vegaEmbed) draw(); else window.addEventListener("load", draw);
