import { MaskEditor } from '../../../components/masks/MaskEditor.tsx';

export default async function MasksPage({ params }: { params: Promise<{ id: string }> }) {
  return <MaskEditor projectId={(await params).id} />;
}
