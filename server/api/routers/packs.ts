// The pack library (docs/packs.md, "Studio API"): publish a project's learned concepts as a pack, browse packs with
// their previews, upload a pack file, follow a share link, and import a pack into a project. Publishing and
// importing are jobs (pack-export, pack-import): follow them with jobs.events; their results land in the library and
// in the project's concepts. Files download by sha256 (server/packs/http.ts), so a link always yields the same bytes.
import { z } from 'zod';
import { PACK_VISIBILITIES } from '../../packs/library.ts';
import { addUploadedPack, importIntoProject, packFileName, packLibrary, publishProject } from '../../packs/service.ts';
import type { PackEntry } from '../../packs/library.ts';
import { UploadError } from '../../storage/images.ts';
import { mapErrors } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

const id = z.string().min(1).max(128);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');
const visibility = z.enum(PACK_VISIBILITIES);
const shareToken = z.string().min(8).max(64);
const placeholder = z.string().regex(/^<[^<>\s]{1,64}>$/, 'a placeholder token such as <asset0>');
const packToken = z.string().regex(/^<[a-z0-9][a-z0-9_-]{0,46}>$/, 'a pack token is <name> with lowercase letters, digits, _ and -');

/** A library entry as clients see it, with the file name its download gets. */
function present(entry: PackEntry) {
  return { ...entry, fileName: packFileName(entry) };
}

export const packsRouter = router({
  /**
   * Packs a project's learned concepts (default: the latest learning run; tokens named after their instances) as a
   * pack-export job. The completed job's result holds packId, sha256 and shareToken; the entry is then in the library.
   */
  publish: publicProcedure
    .input(
      z.object({
        projectId: id,
        name: z.string().trim().max(100).optional(),
        note: z.string().max(4000).optional(),
        visibility: visibility.default('unlisted'),
        folderSha256: sha256.optional(),
        rename: z.record(placeholder, packToken).optional(),
      }),
    )
    .mutation(({ ctx, input }) => mapErrors(async () => publishProject(await ctx.services(), input))),

  /** Newest first. public: what anyone may browse; library: every pack of this studio (optionally one project's). */
  list: publicProcedure
    .input(z.object({ scope: z.enum(['public', 'library']).default('public'), projectId: id.optional(), limit: z.number().int().min(1).max(200).optional(), before: id.optional() }).optional())
    .query(({ ctx, input }) => mapErrors(async () => packLibrary(await ctx.services()).list(input ?? { scope: 'public' }).map(present))),

  get: publicProcedure.input(z.object({ id })).query(({ ctx, input }) => mapErrors(async () => present(packLibrary(await ctx.services()).require(input.id)))),

  /** The pack an unlisted or public share link names. */
  byLink: publicProcedure.input(z.object({ shareToken })).query(({ ctx, input }) => mapErrors(async () => present(packLibrary(await ctx.services()).byShareToken(input.shareToken)))),

  setVisibility: publicProcedure
    .input(z.object({ id, visibility }))
    .mutation(({ ctx, input }) => mapErrors(async () => present(packLibrary(await ctx.services()).setVisibility(input.id, input.visibility)))),

  /** A new share link; the old one stops working. */
  newLink: publicProcedure.input(z.object({ id })).mutation(({ ctx, input }) => mapErrors(async () => present(packLibrary(await ctx.services()).rotateShareToken(input.id)))),

  /** Removes the library entry (the file stays: other entries or links may hold the same bytes). */
  delete: publicProcedure.input(z.object({ id })).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      packLibrary(await ctx.services()).delete(input.id);
      return { id: input.id };
    }),
  ),

  /** FormData: file (a .safetensors pack). Checked completely, then added to the library as a private entry. */
  upload: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const file = input.get('file');
      if (!(file instanceof Blob)) throw new UploadError("attach the pack as the file field 'file'");
      const name = (file as File).name || 'the upload';
      const services = await ctx.services();
      return present(await addUploadedPack(services, new Uint8Array(await file.arrayBuffer()), name));
    }),
  ),

  /**
   * Imports a library pack (packId) or a shared one (shareToken) into a project as a pack-import job: the worker
   * checks it against the base model and writes a concept folder; tokens the project already has are renamed.
   * The completed job has added one concept per token (metadata.source 'pack').
   */
  importIntoProject: publicProcedure
    .input(z.object({ projectId: id, packId: id.optional(), shareToken: shareToken.optional(), model: z.string().min(1).max(4096).optional(), allowOtherBase: z.boolean().optional() }))
    .mutation(({ ctx, input }) => mapErrors(async () => importIntoProject(await ctx.services(), input))),
});
