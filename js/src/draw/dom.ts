/**
 * Tiny DOM builders. Text goes in through `textContent` and attributes through `setAttribute`
 * only: module, class and parameter names are user-controlled and must never be parsed as HTML.
 */

export type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  title?: string;
  attrs?: Record<string, string | number | boolean | null | undefined>;
}

function apply(el: Element, props: Props | undefined, children: readonly Child[]): void {
  if (props?.class) el.setAttribute("class", props.class);
  if (props?.title !== undefined) {
    if (el instanceof HTMLElement) el.title = props.title;
    else el.setAttribute("title", props.title);
  }
  for (const [key, value] of Object.entries(props?.attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(key, value === true ? "" : String(value));
  }
  if (props?.text !== undefined) el.textContent = props.text;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** An HTML element with class, text, title, attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, props, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element; `props.title` becomes a `<title>` child (the SVG tooltip). */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  props?: Props,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
  const { title, ...rest } = props ?? {};
  apply(el, rest, children);
  if (title !== undefined) {
    const tooltip = document.createElementNS(SVG_NS, "title");
    tooltip.textContent = title;
    el.append(tooltip);
  }
  return el;
}

/** The root element of a view: `.nbviz.nbviz-<kind>`. */
export function viewRoot(kind: string, ...children: Child[]): HTMLDivElement {
  return h(
    "div",
    { class: `nbviz nbviz-${kind}`, attrs: { "data-nbviz-view": kind } },
    ...children,
  );
}

const pendingReveal = new WeakMap<Element, Element>();

/**
 * Scrolls the scroll container `box` (not the page around it) so that `el` is in view, at the
 * next animation frame: reading the layout there costs no extra layout pass, where reading it
 * right after other views changed the DOM (`scrollIntoView` now) forces one. Follows a selection
 * made elsewhere (another view, Python) without scrolling the notebook to the list.
 */
export function revealWithin(el: Element, box: HTMLElement): void {
  const queued = pendingReveal.has(box);
  pendingReveal.set(box, el);
  if (queued) return;
  const run = (): void => {
    const target = pendingReveal.get(box);
    pendingReveal.delete(box);
    if (target === undefined || !box.contains(target)) return;
    const outer = box.getBoundingClientRect();
    const r = target.getBoundingClientRect();
    const top = outer.top + box.clientTop;
    const bottom = top + box.clientHeight;
    if (r.top < top) box.scrollTop += r.top - top;
    else if (r.bottom > bottom) box.scrollTop += Math.min(r.bottom - bottom, r.top - top);
    const left = outer.left + box.clientLeft;
    const right = left + box.clientWidth;
    if (r.left < left) box.scrollLeft += r.left - left;
    else if (r.right > right) box.scrollLeft += Math.min(r.right - right, r.left - left);
  };
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
  else run();
}

/** Calls `callback` once the page is idle (within `timeout` ms), or soon where it cannot tell. */
export function whenIdle(callback: () => void, timeout = 500): void {
  if (typeof requestIdleCallback === "function") requestIdleCallback(callback, { timeout });
  else setTimeout(callback, 0);
}

/**
 * Sets `hidden` only when it changes: writing the attribute, even to the value it has, restyles
 * the element (it is a presentation attribute).
 */
export function setHidden(el: HTMLElement, hidden: boolean): void {
  if (el.hidden !== hidden) el.hidden = hidden;
}

/** Display name of a layer: "(root)" for the root (""). */
export function layerLabel(name: string): string {
  return name === "" ? "(root)" : name;
}

/** Marks an element as the selected one (or not), for styles and for assistive technology. */
export function markSelected(el: Element | undefined, selected: boolean): void {
  if (el === undefined) return;
  el.classList.toggle("is-selected", selected);
  el.setAttribute("aria-selected", String(selected));
}
