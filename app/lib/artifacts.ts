export function artifactUrl(sha256: string): string {
  return `/api/artifacts/${sha256}`;
}
