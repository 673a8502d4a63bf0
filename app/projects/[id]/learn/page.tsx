import { LearnView } from '../../../components/learn/LearnView.tsx';

export default async function LearnPage({ params }: { params: Promise<{ id: string }> }) {
  return <LearnView projectId={(await params).id} />;
}
