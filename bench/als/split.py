"""Split a generated rating file into train/test TSVs with a fixed seed.

Every held-out row's user and item also appear in the training file (rows that would not are
moved to training), so every system scores exactly the same held-out pairs.
"""
import random
import sys

src, train_path, test_path, fraction, seed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
rows = [line.rstrip("\n").split("\t") for line in open(src) if line.strip()]
held = [rng.random() < fraction for _ in rows]
train_users = {r[0] for r, h in zip(rows, held) if not h}
train_items = {r[1] for r, h in zip(rows, held) if not h}
with open(train_path, "w") as tr, open(test_path, "w") as te:
    for r, h in zip(rows, held):
        line = "\t".join(r[:3]) + "\n"
        if h and r[0] in train_users and r[1] in train_items:
            te.write(line)
        else:
            tr.write(line)
