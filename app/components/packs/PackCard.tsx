'use client';
// One pack of the library: its preview, tokens, the instances it carries, base model and size, and actions.
import type { ReactNode } from 'react';
import { artifactUrl } from '../../lib/artifacts.ts';
import { formatAgo } from '../../lib/format.ts';
import type { RouterOutputs } from '../../lib/trpc.ts';
import { TokenChip } from '../ui.tsx';

export type PackRow = RouterOutputs['packs']['list'][number];

export function packDownloadUrl(pack: PackRow): string {
  return `/api/packs/${pack.sha256}`;
}

export function PackCard({ pack, actions }: { pack: PackRow; actions?: ReactNode }) {
  return (
    <article className="flex gap-3 rounded-xl border border-neutral-200 bg-white p-3 shadow-sm dark:border-neutral-800 dark:bg-neutral-900" data-testid="pack-card">
      <div className="size-24 shrink-0 overflow-hidden rounded-md bg-neutral-100 dark:bg-neutral-800">
        {pack.previewSha256 && (
          // eslint-disable-next-line @next/next/no-img-element
          <img src={artifactUrl(pack.previewSha256)} alt="" className="size-full object-cover" />
        )}
      </div>
      <div className="min-w-0 flex-1">
        <div className="flex flex-wrap items-baseline gap-x-2">
          <h3 className="truncate font-semibold">{pack.name}</h3>
          <span className="text-xs text-neutral-500">
            {pack.visibility} · {(pack.size / 1024).toFixed(0)} KB · {pack.source === 'exported' ? 'exported here' : 'uploaded'} {formatAgo(pack.createdAt)}
          </span>
        </div>
        <div className="mt-1 flex flex-wrap gap-1">
          {pack.tokens.map((token) => (
            <TokenChip key={token} token={token} />
          ))}
        </div>
        {pack.listing.instances.some((instance) => instance.thumbnailSha256) && (
          <div className="mt-1.5 flex gap-1">
            {pack.listing.instances.map((instance) =>
              instance.thumbnailSha256 ? (
                // eslint-disable-next-line @next/next/no-img-element
                <img key={instance.token} src={artifactUrl(instance.thumbnailSha256)} alt={`${instance.name ?? instance.token}`} title={instance.token} className="size-8 rounded object-cover ring-1 ring-neutral-300 dark:ring-neutral-700" />
              ) : null,
            )}
          </div>
        )}
        <p className="mt-1 text-xs text-neutral-500">
          base model {pack.baseModel ?? 'unknown'}
          {pack.listing.lora ? ` · LoRA rank ${pack.listing.lora.rank}` : ''}
          {pack.listing.note ? ` · “${pack.listing.note}”` : ''}
        </p>
        {actions && <div className="mt-2 flex flex-wrap items-center gap-2">{actions}</div>}
      </div>
    </article>
  );
}
