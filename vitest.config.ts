import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "jsdom",
    include: ["js/tests/**/*.test.ts"],
    // Let tests read js/src/style.css (vitest blanks CSS files by default).
    css: { include: [/style\.css/] },
  },
});
