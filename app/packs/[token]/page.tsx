import { SharedPack } from '../../components/packs/PackBrowser.tsx';

export default async function SharedPackPage({ params }: { params: Promise<{ token: string }> }) {
  return <SharedPack shareToken={(await params).token} />;
}
