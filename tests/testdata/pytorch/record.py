# Records PyTorch CUDA allocator snapshots of three workloads (no weights: models from configs),
# as the test data beside this file: python3 record.py (needs torch, torchvision, transformers
# and a CUDA GPU). Frames keep package-relative file names only, so no machine path is stored.
import gzip, json, os, pickle, re, time
import torch, torchvision
out = os.environ.get("OUT", ".")
torch.manual_seed(0)
dev = "cuda"
facts = {}

def shorten(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "filename" and isinstance(v, str) and "/" in v:
                o[k] = re.sub(r"^.*/site-packages/", "", v) if "site-packages" in v else os.path.basename(v)
            else:
                shorten(v)
    elif isinstance(o, (list, tuple)):
        for v in o:
            shorten(v)

def record(name, fn, max_entries=40000):
    torch.cuda.synchronize(); torch.cuda.empty_cache()
    torch.cuda.memory._record_memory_history(max_entries=max_entries, stacks="python")
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    fn()
    torch.cuda.synchronize()
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    shorten(snap)
    raw = pickle.dumps(snap, protocol=4)
    with gzip.GzipFile(f"{out}/{name}.pickle.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(raw)
    events = sum(len(t) for t in snap["device_traces"])
    facts[name] = dict(
        seconds=round(time.time() - t, 2),
        peak_allocated=torch.cuda.max_memory_allocated(),
        peak_reserved=torch.cuda.max_memory_reserved(),
        events=events,
        segments=len(snap["segments"]),
        pickle_bytes=len(raw),
        gz_bytes=os.path.getsize(f"{out}/{name}.pickle.gz"),
    )
    print(name, facts[name], flush=True)

# 1. ResNet-50 inference, varying batch; weights allocated before recording begins.
m = torchvision.models.resnet50(weights=None).to(dev).eval()
def r50():
    with torch.no_grad():
        for b in [1, 8, 32, 4, 16, 24, 2, 32, 12]:
            x = torch.randn(b, 3, 224, 224, device=dev)
            y = m(x); del x, y
record("resnet50_infer_varbatch", r50)
del m

# 2. Transformer (BERT-base config) training, varying sequence length.
from transformers import BertConfig, BertForMaskedLM
cfg = BertConfig(num_hidden_layers=6)
bert = BertForMaskedLM(cfg).to(dev).train()
opt = torch.optim.AdamW(bert.parameters(), lr=1e-4)
def bert_train():
    for s in [64, 128, 96, 256, 32, 192, 128, 160]:
        ids = torch.randint(0, cfg.vocab_size, (8, s), device=dev)
        loss = bert(input_ids=ids, labels=ids).loss
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        del ids, loss
record("bert_train_varseq", bert_train, 60000)
del bert, opt

# 3. Large activations: a segmentation net (FCN-ResNet50) at high resolution, training steps.
seg = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=8).to(dev).train()
opt = torch.optim.SGD(seg.parameters(), lr=0.01)
def seg_train():
    for b, hw in [(2, 512), (4, 384), (2, 640), (1, 768)]:
        x = torch.randn(b, 3, hw, hw, device=dev)
        t = torch.randint(0, 8, (b, hw, hw), device=dev)
        loss = torch.nn.functional.cross_entropy(seg(x)["out"], t)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        del x, t, loss
record("fcn_train_largeact", seg_train, 60000)

json.dump(dict(torch=torch.__version__, gpu=torch.cuda.get_device_name(), workloads=facts),
          open(f"{out}/facts.json", "w"), indent=1)
