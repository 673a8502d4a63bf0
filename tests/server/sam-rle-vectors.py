# Regenerates tests/server/sam-rle-vectors.json with pycocotools (the reference COCO RLE implementation):
#   python3 -m venv /tmp/coco && /tmp/coco/bin/pip install pycocotools && /tmp/coco/bin/python tests/server/sam-rle-vectors.py
# Each vector: a row-major 0/1 mask, pycocotools' compressed counts, and the uncompressed counts (checked by
# pycocotools' own conversion from uncompressed to compressed).
import json
import numpy as np
from pycocotools import mask as coco_mask

rng = np.random.default_rng(7)


def blob(h, w, count):
    m = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(count):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(h, w) / 3)
        m |= ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.uint8)
    return m


masks = {
    'corner pixel': np.pad(np.ones((1, 1), np.uint8), ((0, 4), (0, 6))),
    'rectangle': np.pad(np.ones((3, 4), np.uint8), ((1, 1), (2, 1))),
    'empty': np.zeros((6, 9), np.uint8),
    'full': np.ones((4, 5), np.uint8),
    'blobs 17x23': blob(17, 23, 3),
    'noise 12x10': (rng.random((12, 10)) < 0.5).astype(np.uint8),
    'large blobs 96x128': blob(96, 128, 4),
}

vectors = []
for name, m in masks.items():
    h, w = m.shape
    compressed = coco_mask.encode(np.asfortranarray(m))
    flat = m.flatten(order='F')
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            run, current = 0, value
        run += 1
    counts.append(run)
    check = coco_mask.frPyObjects({'size': [h, w], 'counts': counts}, h, w)
    assert check['counts'] == compressed['counts'], name
    assert int(coco_mask.area(compressed)) == int(m.sum())
    vectors.append({
        'name': name,
        'size': [h, w],
        'mask': ''.join(str(v) for v in m.flatten()),
        'compressed': compressed['counts'].decode('ascii'),
        'uncompressed': [int(c) for c in counts],
        'area': int(m.sum()),
    })

out = {'generator': 'tests/server/sam-rle-vectors.py (pycocotools mask.encode)', 'vectors': vectors}
with open(__file__.replace('.py', '.json'), 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(len(vectors), 'vectors')
