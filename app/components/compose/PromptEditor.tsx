'use client';
// A prompt field in which learned tokens (<name>) show as chips in their instance's colour. It is a plain textarea
// (so typing, selection and the keyboard work as everywhere) over a mirror that draws the chips; Backspace after a
// token removes it whole; the token buttons insert one at the caret.
import { useRef, type KeyboardEvent } from 'react';
import type { LearnedToken } from '../../lib/trpc.ts';

const TOKEN = /<[^<>\s]+>/g;

function Mirror({ text, colors }: { text: string; colors: Map<string, string | null> }) {
  const parts: { text: string; token: boolean }[] = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) parts.push({ text: text.slice(last, match.index), token: false });
    parts.push({ text: match[0], token: true });
    last = match.index + match[0].length;
  }
  parts.push({ text: text.slice(last) + '\u200b', token: false });
  return (
    <>
      {parts.map((part, i) =>
        part.token ? (
          <span
            key={i}
            className="rounded-full text-white"
            style={{ backgroundColor: colors.has(part.text) ? (colors.get(part.text) ?? '#4f46e5') : '#a3a3a3', boxShadow: `0 0 0 2px ${colors.has(part.text) ? (colors.get(part.text) ?? '#4f46e5') : '#a3a3a3'}` }}
          >
            {part.text}
          </span>
        ) : (
          <span key={i}>{part.text}</span>
        ),
      )}
    </>
  );
}

export function PromptEditor({ id, value, onChange, tokens, label }: { id: string; value: string; onChange: (value: string) => void; tokens: LearnedToken[]; label: string }) {
  const area = useRef<HTMLTextAreaElement>(null);
  const mirror = useRef<HTMLDivElement>(null);
  const colors = new Map(tokens.map((token) => [token.token, token.color]));
  const shared = 'whitespace-pre-wrap break-words px-3 py-2.5 font-sans text-[15px] leading-7';

  const insert = (token: string) => {
    const element = area.current;
    const start = element?.selectionStart ?? value.length;
    const end = element?.selectionEnd ?? value.length;
    const before = value.slice(0, start);
    const after = value.slice(end);
    const padBefore = before && !/\s$/.test(before) ? ' ' : '';
    const padAfter = after && !/^\s/.test(after) ? ' ' : '';
    const next = `${before}${padBefore}${token}${padAfter}${after}`;
    onChange(next);
    const caret = before.length + padBefore.length + token.length + padAfter.length;
    requestAnimationFrame(() => {
      element?.focus();
      element?.setSelectionRange(caret, caret);
    });
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    const element = event.currentTarget;
    if (event.key !== 'Backspace' || element.selectionStart !== element.selectionEnd) return;
    const caret = element.selectionStart;
    const match = /<[^<>\s]+>$/.exec(value.slice(0, caret));
    if (!match) return;
    event.preventDefault();
    const start = caret - match[0].length;
    onChange(value.slice(0, start) + value.slice(caret));
    requestAnimationFrame(() => element.setSelectionRange(start, start));
  };

  return (
    <div>
      <label htmlFor={id} className="mb-1 block text-sm font-medium">
        {label}
      </label>
      <div className="relative rounded-lg border border-neutral-300 bg-white focus-within:border-indigo-500 focus-within:ring-1 focus-within:ring-indigo-500 dark:border-neutral-700 dark:bg-neutral-900">
        {/* both keep a scrollbar's gutter, so a long prompt wraps the same in the chips as in the text being edited */}
        <div ref={mirror} aria-hidden style={{ scrollbarGutter: 'stable' }} className={`pointer-events-none absolute inset-0 overflow-hidden text-neutral-900 dark:text-neutral-100 ${shared}`}>
          <Mirror text={value} colors={colors} />
        </div>
        <textarea
          ref={area}
          id={id}
          value={value}
          rows={3}
          spellCheck={false}
          onChange={(event) => onChange(event.target.value)}
          onKeyDown={onKeyDown}
          onScroll={(event) => {
            if (mirror.current) mirror.current.scrollTop = event.currentTarget.scrollTop;
          }}
          data-testid="prompt"
          style={{ scrollbarGutter: 'stable' }}
          className={`relative block w-full resize-y bg-transparent text-transparent caret-neutral-900 outline-none selection:bg-indigo-300/50 dark:caret-neutral-100 ${shared}`}
        />
      </div>
      {tokens.length > 0 && (
        <div className="mt-2 flex flex-wrap items-center gap-1.5 text-xs text-neutral-600 dark:text-neutral-400">
          Insert:
          {tokens.map((token) => (
            <button
              key={token.conceptId}
              type="button"
              onClick={() => insert(token.token)}
              className="rounded-full px-2 py-0.5 font-semibold text-white focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-500"
              style={{ backgroundColor: token.color ?? '#4f46e5' }}
            >
              + {token.token}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
