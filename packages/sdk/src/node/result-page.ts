// The page the browser shows when it lands on the loopback redirect.

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export type PageOutcome = { ok: true } | { ok: false; title: string; detail: string };

export function resultPage(outcome: PageOutcome): string {
  const title = outcome.ok ? 'Connected to Edgegate' : outcome.title;
  const detail = outcome.ok
    ? 'You can close this tab and go back to the application.'
    : `${outcome.detail} You can close this tab and try again from the application.`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; display: grid; place-items: center; min-height: 90vh; margin: 0; color: #1b1f24; }
  main { max-width: 32rem; padding: 2rem; text-align: center; }
  h1 { font-size: 1.5rem; color: ${outcome.ok ? '#1a7f37' : '#b42318'}; }
</style>
</head>
<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p></main></body>
</html>
`;
}
