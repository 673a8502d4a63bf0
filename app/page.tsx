import { getServerServices } from '@/server/services.ts';
import { ensureSampleProject } from '@/server/studio/projects.ts';
import { ProjectsHome } from './components/ProjectsHome.tsx';

export const dynamic = 'force-dynamic';

export default async function Home() {
  // The first visit of a fresh data dir finds the sample project ready.
  await ensureSampleProject(await getServerServices());
  return <ProjectsHome />;
}
