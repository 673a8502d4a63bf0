import { PackBrowser } from '../components/packs/PackBrowser.tsx';

export default function PacksPage() {
  return <PackBrowser />;
}
