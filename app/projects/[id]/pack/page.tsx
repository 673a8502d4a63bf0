import { SharePanel } from '../../../components/packs/SharePanel.tsx';

export default async function PackPage({ params }: { params: Promise<{ id: string }> }) {
  return <SharePanel projectId={(await params).id} />;
}
