import { ComposeView } from '../../../components/compose/ComposeView.tsx';

export default async function ComposePage({ params }: { params: Promise<{ id: string }> }) {
  return <ComposeView projectId={(await params).id} />;
}
