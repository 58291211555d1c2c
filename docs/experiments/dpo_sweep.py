"""DPO recipe sweep on the embedded world, in plain PyTorch (a fast stand-in for our engine).
Per config and epoch: held-out implicit-reward accuracy, train accuracy, held-out chosen logp,
sampled ground-truth reward and sequence KL on the 64 held-out prompts (4 samples each)."""
import json, math, re, struct, sys, os, random, itertools, time
import numpy as np, torch
ROOT = os.environ.get("ROOT", ".")
sys.path.insert(0, f"{ROOT}/tests/fixtures")
from make_model_fixture import forward
DEV = os.environ.get("DEV", "cpu")
def load_st(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8+n]); base = 8+n
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b[base+s:base+e], dtype=np.float32).copy()).reshape(v["shape"]).to(DEV)
    return out
tokj = json.load(open(f"{ROOT}/data/tokenizer.json")); vocab = tokj["model"]["vocab"]; inv = {v: k for k, v in vocab.items()}
def words(t): return re.findall(r"[a-z0-9]+|[^a-z0-9\s]+", t.lower())
def toks(t): return [vocab.get(w, 3) for w in words(t)]
# reward: port of src/world/reward.ts
POS = set(("great good excellent wonderful lovely amazing fantastic superb brilliant charming perfect pleasant beautiful clean cozy enjoyable fun helpful impressive delightful friendly gorgeous solid nice delicious tasty fresh gripping moving hilarious reliable sharp loved enjoyed liked adored like love enjoy recommend gem joy treat delight pleasure winner").split())
NEG = set(("bad terrible awful horrible boring rude dirty cold slow noisy disappointing poor dull ugly broken weak mediocre annoying unpleasant messy overpriced lousy sloppy painful useless bland stale greasy predictable silly flimsy faulty hated disliked loathed regretted hate regret mess disaster waste joke letdown nightmare").split())
NEGATORS = {"not", "never", "hardly"}; INT = {"very", "really", "truly", "so", "extremely", "incredibly"}; BND = {",", ".", "!", "and", "but"}
def scan(ts, sign=1, w=1.0):
    s = 0.0
    for t in ts:
        p = 1 if t in POS else -1 if t in NEG else None
        if p is not None: s += sign * w * p; sign, w = 1, 1.0
        elif t in NEGATORS: sign = -sign
        elif t in INT: w = 1.5
        elif t in BND: sign, w = 1, 1.0
    return s, sign, w
def reward(comp_words, prompt_words):
    _, sg, w = scan(prompt_words); s, _, _ = scan(comp_words, sg, w); return 1 / (1 + math.exp(-s))
def load_pairs(f):
    return [(toks(r["prompt"]), toks(r["chosen"]), toks(r["rejected"])) for r in map(json.loads, open(f))]
def batch(seqs):
    T = max(1 + len(p) + len(c) + 1 for p, c in seqs)
    ids = np.zeros((len(seqs), T), dtype=np.int64); tg = np.full((len(seqs), T), -1, dtype=np.int64)
    for i, (p, c) in enumerate(seqs):
        row = [1] + p + c + [2]; ids[i, :len(row)] = row
        tg[i, len(p):len(row) - 1] = row[len(p) + 1:]
    return torch.from_numpy(ids).to(DEV), torch.from_numpy(tg).to(DEV)
def seq_logps(cfg, params, ids, tg):
    lp = torch.log_softmax(forward(cfg, params, ids), -1)
    m = tg >= 0; g = lp.gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1) * m
    return g.sum(-1), m.sum(-1)
def pair_logps(cfg, params, pairs, norm=False):
    ids, tg = batch([(p, c) for p, c, r in pairs] + [(p, r) for p, c, r in pairs])
    s, n = seq_logps(cfg, params, ids, tg); k = len(pairs)
    return s[:k], s[k:], n[:k], n[k:]
@torch.no_grad()
def sample_eval(cfg, pol, ref, prompts, seed, n=4, maxnew=16):
    g = torch.Generator(device=DEV).manual_seed(seed)
    rows = [[1] + p for p in prompts for _ in range(n)]
    L = max(map(len, rows)); B = len(rows)
    # left-align; generate per row with right padding handled by per-row positions: simple loop with full recompute
    seqs = [list(r) for r in rows]; done = [False] * B; kl = np.zeros(B)
    for step in range(maxnew):
        T = max(map(len, seqs)); ids = np.zeros((B, T), dtype=np.int64)
        for i, s in enumerate(seqs): ids[i, :len(s)] = s
        ids = torch.from_numpy(ids).to(DEV)
        last = torch.tensor([len(s) - 1 for s in seqs], device=DEV)
        lp = torch.log_softmax(forward(cfg, pol, ids)[torch.arange(B, device=DEV), last], -1)
        lr = torch.log_softmax(forward(cfg, ref, ids)[torch.arange(B, device=DEV), last], -1)
        nxt = torch.multinomial(lp.exp(), 1, generator=g).squeeze(1).cpu().tolist()
        stepkl = (lp.exp() * (lp - lr)).sum(-1).cpu().tolist()
        for i in range(B):
            if not done[i]:
                kl[i] += stepkl[i]; seqs[i].append(nxt[i]); done[i] = nxt[i] == 2
        if all(done): break
    rs = []
    for i, s in enumerate(seqs):
        comp = [inv[t] for t in s[len(rows[i]):] if t != 2]
        rs.append(reward(comp, [inv[t] for t in rows[i][1:]]))
    return float(np.mean(rs)), float(kl.mean())
@torch.no_grad()
def make_pairs(cfg, ref, nprefix, seed):
    seen = []; 
    for l in open(f"{ROOT}/data/sft.jsonl"):
        p = json.loads(l)["prompt"]
        if p not in seen: seen.append(p)
    prompts = [toks(p) for p in seen[:nprefix]]
    g = torch.Generator(device=DEV).manual_seed(seed)
    rows = [[1] + p for p in prompts for _ in range(4)]; B = len(rows)
    seqs = [list(r) for r in rows]; done = [False] * B
    for step in range(12):
        T = max(map(len, seqs)); ids = np.zeros((B, T), dtype=np.int64)
        for i, q in enumerate(seqs): ids[i, :len(q)] = q
        ids = torch.from_numpy(ids).to(DEV); last = torch.tensor([len(q) - 1 for q in seqs], device=DEV)
        lp = torch.log_softmax(forward(cfg, ref, ids)[torch.arange(B, device=DEV), last], -1)
        nxt = torch.multinomial(lp.exp(), 1, generator=g).squeeze(1).cpu().tolist()
        for i in range(B):
            if not done[i]: seqs[i].append(nxt[i]); done[i] = nxt[i] == 2
    pairs = []
    for k, p in enumerate(prompts):
        comps = [[t for t in seqs[4*k+j][len(rows[4*k+j]):] if t != 2] for j in range(4)]
        rw = [reward([inv[t] for t in cm], [inv[t] for t in p]) for cm in comps]
        for a in range(4):
            for b in range(a + 1, 4):
                if rw[a] == rw[b] or comps[a] == comps[b]: continue
                w, l = (a, b) if rw[a] > rw[b] else (b, a)
                pairs.append((p, comps[w], comps[l]))
    return pairs
def gap_buckets(f, m):
    out = {}
    for (r, ok) in zip(map(json.loads, open(f)), (m > 0).tolist()):
        pw = words(r["prompt"]); d = abs(math.log(1/reward(words(r["chosen"]), pw)-1) - math.log(1/reward(words(r["rejected"]), pw)-1))
        k = "<=0.5" if d <= 0.51 else "1" if d <= 1.01 else "1.5-2" if d <= 2.01 else ">2"
        out.setdefault(k, []).append(ok)
    return {k: (round(sum(v)/len(v), 3), len(v)) for k, v in sorted(out.items())}
def run(c):
    torch.manual_seed(0)
    cfg = json.load(open(f"{c['model']}/config.json")); ref = load_st(f"{c['model']}/model.safetensors")
    sel = c.get("train_only", "")
    params = {k: v.clone().requires_grad_(sel == "" or any(s in k for s in sel.split(","))) for k, v in ref.items()}
    tr = make_pairs(cfg, ref, c["prefixes"], c.get("pair_seed", 0)) if c.get("prefixes") else load_pairs(f"{ROOT}/data/preferences.jsonl"); ev = load_pairs(f"{ROOT}/data/preferences_eval.jsonl")
    prompts = [toks(json.loads(l)["prompt"]) for l in open(f"{ROOT}/data/prompts_eval.jsonl")]
    with torch.no_grad():
        rtc, rtr, ntc, ntr = pair_logps(cfg, ref, tr); rec, rer, _, _ = pair_logps(cfg, ref, ev)
    opt = torch.optim.AdamW([p for p in params.values() if p.requires_grad], lr=c["lr"], weight_decay=c.get("wd", 0.0))
    steps = c["epochs"] * math.ceil(len(tr) / c["bs"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 5) * max(0, 1 - s / steps))
    rng = random.Random(0); out = []; beta = c["beta"]
    for ep in range(c["epochs"]):
        order = list(range(len(tr))); rng.shuffle(order)
        for b0 in range(0, len(order), c["bs"]):
            idx = order[b0:b0 + c["bs"]]; pb = [tr[i] for i in idx]; ix = torch.tensor(idx, device=DEV)
            pc, pr, nc, nr = pair_logps(cfg, params, pb)
            h = (pc - rtc[ix]) - (pr - rtr[ix])
            if c["loss"] == "sigmoid": loss = -torch.nn.functional.logsigmoid(beta * h).mean()
            elif c["loss"] == "ipo": loss = ((h / (nc + nr).clamp(min=1) * 2 if c.get("ipo_norm") else h) - 1 / (2 * beta)).pow(2).mean()
            elif c["loss"] == "robust":
                e = c.get("ls", 0.1); loss = (-(1 - e) * torch.nn.functional.logsigmoid(beta * h) + e * torch.nn.functional.logsigmoid(-beta * h)).mean() / (1 - 2 * e)
            elif c["loss"] == "norm":  # length-normalised log-ratios
                h2 = (pc - rtc[ix]) / nc - (pr - rtr[ix]) / nr; loss = -torch.nn.functional.logsigmoid(beta * h2).mean()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        with torch.no_grad():
            ec, er, _, _ = pair_logps(cfg, params, ev); m = (ec - rec) - (er - rer)
            tc, trr, _, _ = pair_logps(cfg, params, tr); tm = (tc - rtc) - (trr - rtr)
        row = dict(epoch=ep + 1, acc=round((m > 0).float().mean().item(), 4), train_acc=round((tm > 0).float().mean().item(), 4),
                   chosen=round(ec.mean().item(), 3), rejected=round(er.mean().item(), 3))
        if c.get("sample", True) and (ep + 1 == c["epochs"] or c.get("sample_each")):
            rw, kl = sample_eval(cfg, params, ref, prompts, 0); row.update(reward=round(rw, 4), kl=round(kl, 3))
        if ep + 1 == c["epochs"]: row["gaps"] = gap_buckets(f"{ROOT}/data/preferences_eval.jsonl", m); row["pairs"] = len(tr)
        out.append(row)
    return out
def main():
    grid = json.load(open(sys.argv[1])); workers = int(os.environ.get("W", "1"))
    outp = sys.argv[2]
    if workers > 1:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers) as pool, open(outp, "w") as f:
            for c, r in zip(grid, pool.imap(run_safe, grid)):
                f.write(json.dumps(dict(cfg=c, res=r)) + "\n"); f.flush()
    else:
        with open(outp, "w") as f:
            for c in grid: f.write(json.dumps(dict(cfg=c, res=run_safe(c))) + "\n"); f.flush()
def run_safe(c):
    torch.set_num_threads(int(os.environ.get("T", "1")))
    if DEV == "cuda": torch.set_default_device("cuda")
    t = time.time()
    try: r = run(c)
    except Exception as e: r = [dict(error=repr(e))]
    r.append(dict(seconds=round(time.time() - t, 1)))
    return r
if __name__ == "__main__": main()
