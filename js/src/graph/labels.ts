/** Text and colour of the boxes and edges: deterministic, no DOM, no locale. */

import { formatParams, formatShape } from "../format";
import { type Box, type GraphIndex, type Page, ROOT } from "./model";
import type { WireNode } from "./wire";

/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Fills readable under dark text, distinct enough side by side. */
export const PALETTE: readonly string[] = [
  "#cfe3f7",
  "#d7ecd0",
  "#f9dcc4",
  "#e6d7f0",
  "#f6e7a8",
  "#cdeae8",
  "#f5d0dc",
  "#dfe3c3",
  "#d9d4f5",
  "#f3d9b1",
  "#c9e4d6",
  "#ecd5cf",
];

/** Fill colour of a box: a module's class picks a palette entry by hash; ops and I/O are grey. */
export function nodeColor(node: Pick<WireNode, "kind" | "cls">): string {
  if (node.kind === "op") return "#eeeeee";
  if (node.kind === "input" || node.kind === "output") return "#ffffff";
  return PALETTE[hashString(node.cls) % PALETTE.length] ?? "#eeeeee";
}

/** "blocks.0", "blocks.47" -> "blocks.0–47"; unrelated names -> "a–b". */
export function nameRange(first: string, last: string): string {
  const dot = first.lastIndexOf(".");
  const prefix = first.slice(0, dot + 1);
  if (dot >= 0 && last.startsWith(prefix) && !last.slice(prefix.length).includes(".")) {
    return `${first}–${last.slice(prefix.length)}`;
  }
  return first === last ? first : `${first}–${last}`;
}

/** A node's name relative to its parent group ("conv1" under "layer1.0"). */
export function localName(index: GraphIndex, id: number): string {
  const node = index.nodes[id];
  if (node === undefined) return "";
  const p = index.parent[id] ?? ROOT;
  const parent = p === ROOT ? undefined : index.nodes[p];
  if (node.kind === "module" && parent && parent.name !== "") {
    if (node.name.startsWith(`${parent.name}.`)) return node.name.slice(parent.name.length + 1);
  }
  return node.name;
}

/** Shape with dtype when not float32, and a multiplicity when several edges merged. */
export function edgeLabel(shape: readonly number[], dtype: string, count: number): string {
  let text = formatShape(shape);
  if (dtype !== "" && dtype !== "float32") text += ` ${dtype}`;
  if (count > 1) text += ` ×${count}`;
  return text;
}

export interface BoxText {
  /** First line: the (local) name, or "Class ×n" for a fold. */
  title: string;
  /** Second line: the class, or the name range for a fold. */
  subtitle: string;
  /** Output shape and parameter count, "" when none. */
  detail: string;
  /** Full tooltip: qualified name, class, shape, exact parameters. */
  tooltip: string;
}

/** "items 1001–2000 of 3000": a page's title. */
export function pageTitle(page: Page): string {
  return `items ${page.first + 1}–${page.first + page.count} of ${page.of}`;
}

export function boxText(index: GraphIndex, box: Box): BoxText {
  if (box.page !== undefined) {
    const group = index.nodes[box.page.group]?.name || "the top level";
    return {
      title: pageTitle(box.page),
      subtitle: group,
      detail: "",
      tooltip: `${pageTitle(box.page)} of ${group}, shown a page at a time; click to open`,
    };
  }
  const node = index.nodes[box.node];
  if (node === undefined) return { title: "?", subtitle: "", detail: "", tooltip: "" };
  const shape = node.shape ? formatShape(node.shape) : "";
  const members = box.fold?.members ?? [box.node];
  const params = members.reduce((sum, m) => sum + (index.nodes[m]?.params ?? 0), 0);
  const p = formatParams(params);
  const detail = [shape, params > 0 ? `${p.text} params` : ""].filter((x) => x !== "").join(" · ");
  if (box.fold !== undefined) {
    const last = index.nodes[members[members.length - 1] ?? box.node];
    const range = nameRange(node.name, last?.name ?? node.name);
    return {
      title: `${node.cls} ×${members.length}`,
      subtitle: range,
      detail,
      tooltip: `${range}: ${members.length} × ${node.cls} (${p.title} parameters); click to unfold`,
    };
  }
  const tip = [node.name, node.cls, shape, params > 0 ? `${p.title} parameters` : ""];
  return {
    title: localName(index, box.node),
    subtitle: node.kind === "op" ? "" : node.cls,
    detail,
    tooltip: tip.filter((x) => x !== "").join("\n"),
  };
}

/** Widest box, and the text widths used to size boxes without measuring the DOM. */
export const BOX_MAX_WIDTH = 280;
const TITLE_CHAR = 7.2;
const TEXT_CHAR = 6.4;
const BOX_PAD_X = 10;
export const LINE_HEIGHT = 14;

/** `text` cut to `max` characters with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

export const maxTitleChars = Math.floor((BOX_MAX_WIDTH - 2 * BOX_PAD_X - 16) / TITLE_CHAR);
export const maxTextChars = Math.floor((BOX_MAX_WIDTH - 2 * BOX_PAD_X) / TEXT_CHAR);

/** The lines a box shows, already clipped. */
export function boxLines(text: BoxText): { cls: string; text: string }[] {
  const lines = [{ cls: "nbviz-box-title", text: clip(text.title, maxTitleChars) }];
  if (text.subtitle !== "")
    lines.push({ cls: "nbviz-box-sub", text: clip(text.subtitle, maxTextChars) });
  if (text.detail !== "")
    lines.push({ cls: "nbviz-box-detail", text: clip(text.detail, maxTextChars) });
  return lines;
}

/** Size of a box from its text (a toggle adds room on the right). */
export function measureBox(text: BoxText, toggle: boolean): { w: number; h: number } {
  const lines = boxLines(text);
  let w = 0;
  for (const [i, line] of lines.entries()) {
    w = Math.max(
      w,
      line.text.length * (i === 0 ? TITLE_CHAR : TEXT_CHAR) + (i === 0 && toggle ? 16 : 0),
    );
  }
  return {
    w: Math.round(Math.min(BOX_MAX_WIDTH, Math.max(56, w + 2 * BOX_PAD_X))),
    h: 8 + lines.length * LINE_HEIGHT,
  };
}

/** Label width for an edge label's text (11px text). */
export function labelWidth(text: string): number {
  return text === "" ? 0 : Math.round(text.length * 5.6 + 4);
}
