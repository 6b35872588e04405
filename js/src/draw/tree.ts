/**
 * The module hierarchy as a collapsible tree: one flat row per layer (depth-first order, so a
 * subtree is a contiguous run of rows), indented by depth. Pure drawing: data in, DOM out;
 * selection is reported through `onSelect` and applied back with `update`.
 *
 * Hooks: `.nbviz.nbviz-structure`; rows `.nbviz-row[data-layer="<name>"]` (`.is-selected` on the
 * selected one); `.nbviz-toggle[aria-expanded]` on rows with children.
 */

import { formatOutputs, formatParams, plural } from "../format";
import type { LayerRow } from "../protocol";
import { h, layerLabel, markSelected, revealWithin, viewRoot } from "./dom";

export interface TreeData {
  layers: readonly LayerRow[];
  selected: string | null;
  warnings?: readonly string[];
  /** Layer name -> output shapes per call (from a probe forward); shown as a column when any. */
  outputs?: Readonly<Record<string, readonly string[]>>;
}

export interface TreeOptions {
  onSelect?: (name: string) => void;
  /** Rows shallower than this start expanded: 2 shows root, children and grandchildren. */
  expandDepth?: number;
}

export interface Tree {
  el: HTMLDivElement;
  update(next: Partial<TreeData>): void;
  isExpanded(name: string): boolean;
  setExpanded(name: string, expanded: boolean): void;
}

/** Parent index of each row, -1 for roots (and for malformed parents that do not precede it). */
export function parentIndices(layers: readonly LayerRow[]): Int32Array {
  const parents = new Int32Array(layers.length);
  layers.forEach((row, i) => {
    const p = row.parent;
    parents[i] = Number.isInteger(p) && p >= 0 && p < i ? p : -1;
  });
  return parents;
}

/** Index one past the last row of each row's subtree (depth-first order). */
export function subtreeEnds(parents: Int32Array): Int32Array {
  const n = parents.length;
  const ends = new Int32Array(n);
  for (let i = 0; i < n; i++) ends[i] = i + 1;
  // Children follow their parents, so walking backwards pushes each end up to its ancestors.
  for (let i = n - 1; i >= 0; i--) {
    const p = parents[i] ?? -1;
    if (p >= 0 && (ends[i] ?? 0) > (ends[p] ?? 0)) ends[p] = ends[i] ?? 0;
  }
  return ends;
}

/** The row's name relative to its parent ("conv1" under "features"); "(root)" for the root. */
export function localName(layers: readonly LayerRow[], i: number, parents: Int32Array): string {
  const row = layers[i];
  if (row === undefined) return "";
  if (row.name === "") return layerLabel("");
  const parent = layers[parents[i] ?? -1];
  if (parent !== undefined && parent.name !== "" && row.name.startsWith(`${parent.name}.`)) {
    return row.name.slice(parent.name.length + 1);
  }
  return row.name;
}

interface Badge {
  kind: string;
  text: string;
  title?: string;
}

/** The badges of a row, in display order. */
export function layerBadges(row: LayerRow): Badge[] {
  const badges: Badge[] = [];
  if (row.frozen > 0 && row.trainable === 0) {
    badges.push({
      kind: "frozen",
      text: "frozen",
      title: "no parameter in this subtree requires grad",
    });
  } else if (row.frozen > 0 && row.trainable > 0) {
    badges.push({
      kind: "partly-frozen",
      text: "partly frozen",
      title: `${formatParams(row.trainable).title} trainable, ${formatParams(row.frozen).title} frozen`,
    });
  }
  if (row.lazy) badges.push({ kind: "lazy", text: "lazy", title: "has uninitialized parameters" });
  if (row.shared) {
    badges.push({
      kind: "shared",
      text: "shared",
      title: "holds a parameter another module also holds",
    });
  }
  if (row.alias_of !== null) {
    badges.push({
      kind: "alias",
      text: `alias of ${layerLabel(row.alias_of)}`,
      title: "the same module object appears under another name first",
    });
  }
  if (row.buffers.length > 0) {
    badges.push({
      kind: "buffers",
      text: plural(row.buffers.length, "buffer"),
      title: `${row.buffers.join(", ")} (${formatParams(row.buffer_elements).title} elements)`,
    });
  }
  return badges;
}

function paramCell(kind: "own" | "total", n: number): HTMLSpanElement {
  const { text, title } = formatParams(n);
  return h("span", {
    class: `nbviz-${kind} nbviz-num${n === 0 ? " is-zero" : ""}`,
    text,
    title: `${title} ${kind === "own" ? "own parameters" : "parameters in the subtree"}`,
  });
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
}

export function createTree(data: TreeData, options: TreeOptions = {}): Tree {
  const expandDepth = options.expandDepth ?? 2;
  const summary = h("span", { class: "nbviz-summary" });
  const warningsEl = h("ul", { class: "nbviz-warnings", attrs: { hidden: true } });
  const columns = h(
    "div",
    { class: "nbviz-columns", attrs: { "aria-hidden": "true" } },
    h("span", { text: "Layer" }),
    h("span", { text: "Class" }),
    h("span", { class: "nbviz-output", text: "Output" }),
    h("span", { class: "nbviz-num", text: "Own" }),
    h("span", { class: "nbviz-num", text: "Total" }),
    h("span", { text: "" }),
  );
  const treeEl = h("div", {
    class: "nbviz-tree",
    attrs: { role: "tree", "aria-label": "Module hierarchy" },
  });
  const el = viewRoot(
    "structure",
    h("div", { class: "nbviz-header" }, summary),
    warningsEl,
    columns,
    treeEl,
  );

  let current: TreeData = { ...data };
  let rows: HTMLDivElement[] = [];
  let outputCells: HTMLSpanElement[] = [];
  let toggles: (HTMLButtonElement | null)[] = [];
  let parents: Int32Array = new Int32Array(0);
  let ends: Int32Array = new Int32Array(0);
  let expanded: boolean[] = [];
  let visible: boolean[] = [];
  let indexByName = new Map<string, number>();
  /** Expansion the user chose, kept across rebuilds. */
  const userExpanded = new Map<string, boolean>();
  let selectedIndex = -1;
  let focusIndex = -1;

  function setFocusable(i: number): void {
    if (focusIndex === i) return;
    rows[focusIndex]?.setAttribute("tabindex", "-1");
    focusIndex = i;
    rows[i]?.setAttribute("tabindex", "0");
  }

  /** Recomputes visibility of rows [from, to), whose parents' visibility is already right. */
  function refreshVisibility(from: number, to: number): void {
    for (let j = from; j < to; j++) {
      const p = parents[j] ?? -1;
      const show = p < 0 || ((visible[p] ?? false) && (expanded[p] ?? false));
      visible[j] = show;
      const row = rows[j];
      if (row !== undefined && row.hidden === show) row.hidden = !show;
    }
    if (focusIndex >= 0 && !visible[focusIndex]) {
      let p = parents[focusIndex] ?? -1;
      while (p >= 0 && !visible[p]) p = parents[p] ?? -1;
      setFocusable(Math.max(p, 0));
    }
  }

  function setExpandedAt(i: number, value: boolean, remember = true): void {
    const toggle = toggles[i];
    if (toggle === null || toggle === undefined || expanded[i] === value) return;
    expanded[i] = value;
    if (remember) userExpanded.set(rows[i]?.dataset.layer ?? "", value);
    toggle.setAttribute("aria-expanded", String(value));
    toggle.setAttribute("aria-label", value ? "Collapse" : "Expand");
    toggle.textContent = value ? "▾" : "▸";
    rows[i]?.setAttribute("aria-expanded", String(value));
    refreshVisibility(i + 1, ends[i] ?? i + 1);
  }

  /** Expands every collapsed ancestor of row i. */
  function reveal(i: number): void {
    let top = -1;
    for (let p = parents[i] ?? -1; p >= 0; p = parents[p] ?? -1) {
      if (!expanded[p]) {
        expanded[p] = true;
        userExpanded.set(current.layers[p]?.name ?? "", true);
        const toggle = toggles[p];
        if (toggle) {
          toggle.setAttribute("aria-expanded", "true");
          toggle.setAttribute("aria-label", "Collapse");
          toggle.textContent = "▾";
        }
        rows[p]?.setAttribute("aria-expanded", "true");
        top = p;
      }
    }
    if (top >= 0) refreshVisibility(top + 1, ends[top] ?? top + 1);
  }

  function buildRow(i: number, row: LayerRow, hasChildren: boolean): HTMLDivElement {
    const toggle = hasChildren
      ? h("button", {
          class: "nbviz-toggle",
          attrs: {
            type: "button",
            tabindex: "-1",
            "aria-expanded": "false",
            "aria-label": "Expand",
          },
          text: "▸",
        })
      : null;
    toggles[i] = toggle;
    const qualified = row.name === "" ? `(root) ${row.cls}` : row.name;
    const meta = [row.dtypes.join(", "), row.devices.join(", ")].filter((x) => x !== "");
    const badges = layerBadges(row).map((b) =>
      h("span", {
        class: `nbviz-badge nbviz-badge-${b.kind}`,
        text: b.text,
        ...(b.title === undefined ? {} : { title: b.title }),
      }),
    );
    const outputCell = h("span", { class: "nbviz-output" });
    outputCells[i] = outputCell;
    const rowEl = h(
      "div",
      {
        class: "nbviz-row",
        attrs: {
          "data-layer": row.name,
          role: "treeitem",
          "aria-level": row.depth + 1,
          "aria-selected": "false",
          "aria-expanded": hasChildren ? "false" : null,
          tabindex: "-1",
        },
      },
      h(
        "span",
        { class: "nbviz-cell-name" },
        toggle ?? h("span", { class: "nbviz-toggle-spacer", attrs: { "aria-hidden": "true" } }),
        h("span", {
          class: "nbviz-name",
          text: localName(current.layers, i, parents),
          title: qualified,
        }),
      ),
      h("span", {
        class: "nbviz-cls",
        text: row.cls,
        title: row.module ? `${row.module}.${row.cls}` : row.cls,
      }),
      outputCell,
      paramCell("own", row.own_params),
      paramCell("total", row.total_params),
      h(
        "span",
        { class: "nbviz-extra" },
        ...badges,
        meta.length > 0 ? h("span", { class: "nbviz-meta", text: meta.join(" · ") }) : null,
      ),
    );
    rowEl.style.setProperty("--nbviz-depth", String(Math.max(0, row.depth)));
    return rowEl;
  }

  function renderSummary(): void {
    const layers = current.layers;
    const root = layers[0];
    if (root === undefined) {
      summary.textContent = "No layers";
      return;
    }
    let text = `${plural(layers.length, "layer")} · ${formatParams(root.total_params).text} parameters`;
    if (root.frozen > 0) text += ` (${formatParams(root.trainable).text} trainable)`;
    summary.textContent = text;
    summary.title = `${formatParams(root.total_params).title} parameters`;
  }

  function renderOutputs(): void {
    const outputs = current.outputs ?? {};
    let any = false;
    current.layers.forEach((row, i) => {
      const cell = outputCells[i];
      if (cell === undefined) return;
      const calls = Object.hasOwn(outputs, row.name) ? outputs[row.name] : undefined;
      const { text, title } = formatOutputs(calls);
      if (text !== "") any = true;
      if (cell.textContent !== text) cell.textContent = text;
      if (cell.title !== title) cell.title = title;
    });
    el.classList.toggle("has-outputs", any);
  }

  function renderWarnings(): void {
    const warnings = current.warnings ?? [];
    warningsEl.replaceChildren(
      ...warnings.map((w) => h("li", { class: "nbviz-warning", text: w })),
    );
    warningsEl.hidden = warnings.length === 0;
  }

  function rebuild(): void {
    const layers = current.layers;
    const n = layers.length;
    parents = parentIndices(layers);
    ends = subtreeEnds(parents);
    const hasChildren = new Array<boolean>(n).fill(false);
    for (let i = 0; i < n; i++) {
      const p = parents[i] ?? -1;
      if (p >= 0) hasChildren[p] = true;
    }
    indexByName = new Map(layers.map((row, i) => [row.name, i]));
    toggles = new Array(n).fill(null);
    outputCells = [];
    expanded = new Array<boolean>(n).fill(false);
    visible = new Array<boolean>(n).fill(false);
    selectedIndex = -1;
    focusIndex = -1;
    const fragment = document.createDocumentFragment();
    rows = layers.map((row, i) => {
      const rowEl = buildRow(i, row, hasChildren[i] ?? false);
      fragment.append(rowEl);
      return rowEl;
    });
    for (let i = 0; i < n; i++) {
      const row = layers[i];
      if (row === undefined || !hasChildren[i]) continue;
      const open = userExpanded.get(row.name) ?? row.depth < expandDepth;
      expanded[i] = open;
      const toggle = toggles[i];
      if (toggle && open) {
        toggle.setAttribute("aria-expanded", "true");
        toggle.setAttribute("aria-label", "Collapse");
        toggle.textContent = "▾";
        rows[i]?.setAttribute("aria-expanded", "true");
      }
    }
    refreshVisibility(0, n);
    treeEl.replaceChildren(fragment);
    setFocusable(n > 0 ? 0 : -1);
    renderSummary();
  }

  function applySelection(scroll: boolean): void {
    const next = current.selected === null ? -1 : (indexByName.get(current.selected) ?? -1);
    if (next === selectedIndex) return;
    markSelected(rows[selectedIndex], false);
    selectedIndex = next;
    const row = rows[next];
    if (row === undefined) return;
    markSelected(row, true);
    reveal(next);
    setFocusable(next);
    if (scroll) revealWithin(row, treeEl);
  }

  function visibleNeighbour(from: number, step: 1 | -1): number {
    for (let j = from + step; j >= 0 && j < rows.length; j += step) if (visible[j]) return j;
    return -1;
  }

  function focusRow(i: number): void {
    if (i < 0) return;
    setFocusable(i);
    rows[i]?.focus();
  }

  function rowIndexOf(target: EventTarget | null): number {
    const row = target instanceof Element ? target.closest(".nbviz-row") : null;
    if (!(row instanceof HTMLElement) || !treeEl.contains(row)) return -1;
    return indexByName.get(row.dataset.layer ?? "") ?? -1;
  }

  treeEl.addEventListener("click", (event) => {
    const i = rowIndexOf(event.target);
    if (i < 0) return;
    const target = event.target instanceof Element ? event.target : null;
    if (target?.closest(".nbviz-toggle")) {
      setExpandedAt(i, !expanded[i]);
      return;
    }
    setFocusable(i);
    const name = current.layers[i]?.name;
    if (name !== undefined) options.onSelect?.(name);
  });

  treeEl.addEventListener("keydown", (event) => {
    const i = rowIndexOf(event.target);
    if (i < 0) return;
    let handled = true;
    switch (event.key) {
      case "ArrowDown":
        focusRow(visibleNeighbour(i, 1));
        break;
      case "ArrowUp":
        focusRow(visibleNeighbour(i, -1));
        break;
      case "Home":
        focusRow(0);
        break;
      case "End":
        focusRow(visibleNeighbour(rows.length, -1));
        break;
      case "ArrowRight":
        if (toggles[i] && !expanded[i]) setExpandedAt(i, true);
        else if (toggles[i]) focusRow(visibleNeighbour(i, 1));
        break;
      case "ArrowLeft":
        if (toggles[i] && expanded[i]) setExpandedAt(i, false);
        else focusRow(parents[i] ?? -1);
        break;
      case "Enter":
      case " ": {
        const name = current.layers[i]?.name;
        if (name !== undefined) options.onSelect?.(name);
        break;
      }
      default:
        handled = false;
    }
    if (handled) event.preventDefault();
  });

  rebuild();
  renderOutputs();
  renderWarnings();
  applySelection(false);

  return {
    el,
    update(next: Partial<TreeData>): void {
      const previous = current;
      current = { ...current, ...next };
      if (current.layers !== previous.layers) {
        rebuild();
        renderOutputs();
        applySelection(false);
      } else {
        if (current.outputs !== previous.outputs) renderOutputs();
        if (current.selected !== previous.selected) applySelection(true);
      }
      // Compared by value: the views read a fresh list from the state on every change.
      if (!sameStrings(current.warnings ?? [], previous.warnings ?? [])) renderWarnings();
    },
    isExpanded(name: string): boolean {
      const i = indexByName.get(name);
      return i !== undefined && (expanded[i] ?? false);
    },
    setExpanded(name: string, value: boolean): void {
      const i = indexByName.get(name);
      if (i !== undefined) setExpandedAt(i, value);
    },
  };
}
