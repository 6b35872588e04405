/**
 * A searchable list of layers. Items are built once per `layers`; filtering re-attaches the
 * matching ones (non-matches leave the DOM), so typing stays cheap on large models.
 *
 * Hooks: `.nbviz.nbviz-picker`; `input[type=search]`; items `.nbviz-item[data-layer="<name>"]`
 * (`.is-selected` on the selected one, `.is-active` on the keyboard cursor); `.nbviz-count`.
 */

import { formatCount } from "../format";
import type { LayerRow } from "../protocol";
import { h, layerLabel, markSelected, revealWithin, viewRoot } from "./dom";

/**
 * Indices of the layers whose name or class name contains `query`, case-insensitively, in
 * order. A blank query matches every layer.
 */
export function filterLayers(
  layers: readonly Pick<LayerRow, "name" | "cls">[],
  query: string,
): number[] {
  const q = query.trim().toLowerCase();
  const out: number[] = [];
  layers.forEach((row, i) => {
    if (q === "" || row.name.toLowerCase().includes(q) || row.cls.toLowerCase().includes(q)) {
      out.push(i);
    }
  });
  return out;
}

export interface PickerData {
  layers: readonly LayerRow[];
  selected: string | null;
}

export interface PickerOptions {
  onSelect?: (name: string) => void;
}

export interface Picker {
  el: HTMLDivElement;
  input: HTMLInputElement;
  update(next: Partial<PickerData>): void;
  /** Sets the query as if typed. */
  setQuery(query: string): void;
  /** Indices of the layers shown. */
  readonly matches: readonly number[];
}

let instances = 0;
const RANDOM = Math.random().toString(36).slice(2, 8);

export function createPicker(data: PickerData, options: PickerOptions = {}): Picker {
  const uid = `nbviz-picker-${RANDOM}-${++instances}`;
  const input = h("input", {
    class: "nbviz-search",
    attrs: {
      type: "search",
      placeholder: "Search layers",
      "aria-label": "Search layers",
      autocomplete: "off",
      spellcheck: "false",
      role: "combobox",
      "aria-controls": `${uid}-list`,
      "aria-expanded": "true",
      "aria-autocomplete": "list",
    },
  });
  const count = h("div", { class: "nbviz-count", attrs: { "aria-live": "polite" } });
  const list = h("ul", {
    class: "nbviz-list",
    attrs: { id: `${uid}-list`, role: "listbox", "aria-label": "Layers" },
  });
  const empty = h("div", {
    class: "nbviz-empty",
    text: "No matching layers",
    attrs: { hidden: true },
  });
  const el = viewRoot("picker", input, count, list, empty);

  let current: PickerData = { ...data };
  let items: HTMLLIElement[] = [];
  let indexByName = new Map<string, number>();
  let matches: number[] = [];
  let selectedIndex = -1;
  /** Position in `matches` of the keyboard cursor, -1 for none. */
  let active = -1;

  function setActive(position: number, scroll: boolean): void {
    const before = items[matches[active] ?? -1];
    before?.classList.remove("is-active");
    active = position;
    const item = items[matches[position] ?? -1];
    if (item === undefined) {
      input.removeAttribute("aria-activedescendant");
      return;
    }
    item.classList.add("is-active");
    input.setAttribute("aria-activedescendant", item.id);
    if (scroll) revealWithin(item, list);
  }

  function applyFilter(): void {
    setActive(-1, false);
    matches = filterLayers(current.layers, input.value);
    list.replaceChildren(
      ...matches.flatMap((i) => {
        const item = items[i];
        return item === undefined ? [] : [item];
      }),
    );
    count.textContent = `${formatCount(matches.length)} of ${formatCount(items.length)} layers`;
    empty.hidden = matches.length > 0 || items.length === 0;
    // The cursor starts on the selection when it is shown, else on the first match (if filtering).
    const selectedPosition = matches.indexOf(selectedIndex);
    if (selectedPosition >= 0) setActive(selectedPosition, false);
    else if (input.value.trim() !== "" && matches.length > 0) setActive(0, false);
  }

  function rebuild(): void {
    indexByName = new Map(current.layers.map((row, i) => [row.name, i]));
    items = current.layers.map((row, i) =>
      h(
        "li",
        {
          class: "nbviz-item",
          attrs: {
            id: `${uid}-${i}`,
            "data-layer": row.name,
            role: "option",
            "aria-selected": "false",
          },
          title: row.module
            ? `${layerLabel(row.name)}: ${row.module}.${row.cls}`
            : layerLabel(row.name),
        },
        h("span", { class: "nbviz-name", text: layerLabel(row.name) }),
        h("span", { class: "nbviz-cls", text: row.cls }),
      ),
    );
    selectedIndex = -1;
    matches = [];
    applySelection(false);
    applyFilter();
  }

  function applySelection(scroll: boolean): void {
    const next = current.selected === null ? -1 : (indexByName.get(current.selected) ?? -1);
    if (next === selectedIndex) return;
    markSelected(items[selectedIndex], false);
    selectedIndex = next;
    const item = items[next];
    if (item === undefined) return;
    markSelected(item, true);
    const position = matches.indexOf(next);
    if (position >= 0) setActive(position, false);
    if (scroll && list.contains(item)) revealWithin(item, list);
  }

  function choose(i: number): void {
    const name = current.layers[i]?.name;
    if (name !== undefined) options.onSelect?.(name);
  }

  input.addEventListener("input", applyFilter);
  input.addEventListener("keydown", (event) => {
    switch (event.key) {
      case "ArrowDown":
        if (matches.length > 0) setActive(Math.min(active + 1, matches.length - 1), true);
        break;
      case "ArrowUp":
        if (matches.length > 0) setActive(Math.max(active - 1, 0), true);
        break;
      case "Enter": {
        const i = matches[active] ?? (matches.length === 1 ? matches[0] : undefined);
        if (i !== undefined) choose(i);
        break;
      }
      default:
        return;
    }
    event.preventDefault();
  });
  list.addEventListener("click", (event) => {
    const item = event.target instanceof Element ? event.target.closest(".nbviz-item") : null;
    if (!(item instanceof HTMLElement) || !list.contains(item)) return;
    const i = indexByName.get(item.dataset.layer ?? "");
    if (i === undefined) return;
    setActive(matches.indexOf(i), false);
    choose(i);
  });

  rebuild();

  return {
    el,
    input,
    update(next: Partial<PickerData>): void {
      const previous = current;
      current = { ...current, ...next };
      if (current.layers !== previous.layers) rebuild();
      else if (current.selected !== previous.selected) applySelection(true);
    },
    setQuery(query: string): void {
      input.value = query;
      applyFilter();
    },
    get matches(): readonly number[] {
      return matches;
    },
  };
}
