/**
 * The standalone HTML report's entry (`nbviz/export/html.py` inlines this bundle): builds the
 * shared state model and one model per view from the data embedded in the page, and mounts the
 * views in `nbviz.show`'s layout with their real render functions. Requests go to a fake kernel
 * that answers from replies computed at export time; nothing is fetched.
 */

import type { RenderProps } from "@anywidget/types";
import { h } from "./draw/dom";
import { errorMessage } from "./mount/common";
import type { ViewKind, ViewTraits } from "./protocol";
import { createKernel, type EmbeddedReport, REPORT_FORMAT, stateValues } from "./standalone/kernel";
import { LocalManager, LocalModel } from "./standalone/model";
import { render as renderStructure } from "./structure";
import { render as renderWidget } from "./widget";

const STATE_ID = "state";

function readReport(): EmbeddedReport {
  const script = document.getElementById("nbviz-report");
  if (script === null) throw new Error("the page holds no report data (#nbviz-report)");
  const report = JSON.parse(script.textContent ?? "") as EmbeddedReport;
  if (report.format !== REPORT_FORMAT) {
    throw new Error(`report format ${String(report.format)}; this page reads ${REPORT_FORMAT}`);
  }
  return report;
}

function mountView(
  kind: ViewKind,
  manager: LocalManager,
  kernel: ReturnType<typeof createKernel>,
): HTMLElement {
  const model = new LocalModel({ state: `IPY_MODEL_${STATE_ID}`, view: kind }, kernel, manager);
  const el = h("div", { class: `nbviz-report-view nbviz-report-${kind}` });
  const render = kind === "structure" ? renderStructure : renderWidget;
  const props = { model, el, signal: new AbortController().signal };
  void Promise.resolve(render(props as unknown as RenderProps<ViewTraits>)).catch(
    (error: unknown) => {
      el.replaceChildren(h("div", { class: "nbviz-error", text: errorMessage(error) }));
    },
  );
  return el;
}

function start(root: HTMLElement): void {
  const report = readReport();
  document.title = report.title;
  const kernel = createKernel(report.replies);
  const manager = new LocalManager();
  const state = new LocalModel(stateValues(report.state), kernel, manager);
  manager.models.set(STATE_ID, state);
  const view = (kind: ViewKind) => mountView(kind, manager, kernel);
  const notes = h(
    "ul",
    { class: "nbviz-report-notes" },
    ...report.notes.map((note) => h("li", { text: note })),
  );
  root.replaceChildren(
    h("h1", { class: "nbviz-report-title", text: report.title }),
    notes,
    h("div", { class: "nbviz-report-top" }, view("picker"), view("structure")),
    view("histogram"),
    view("slider"),
    view("flow"),
  );
}

const root = typeof document === "undefined" ? null : document.getElementById("nbviz-root");
if (root !== null) {
  try {
    start(root);
  } catch (error) {
    root.replaceChildren(
      h("div", {
        class: "nbviz-error",
        attrs: { role: "alert" },
        text: `nbviz: this report could not be shown: ${errorMessage(error)}`,
      }),
    );
  }
}
