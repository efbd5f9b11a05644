# Records PyTorch CUDA allocator snapshots of real workloads (the corpus of `deno task
# fragmentation`; models from configs, no weights) as the test data beside this file:
# python3 record.py [NAME ...] (default: every workload; needs torch, torchvision, transformers
# and a CUDA GPU); facts.json gets each one's peaks and the GPU it was recorded on. Frames keep
# package-relative file names only, so no machine path is stored. Weights are allocated before
# recording starts, as in a served or trained model.
import gzip, json, os, pickle, re, sys, time, traceback
import torch, torchvision
out = os.environ.get("OUT", ".")
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

def record(name, fn, max_entries=60000):
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
    facts[name] = dict(
        seconds=round(time.time() - t, 2),
        peak_allocated=torch.cuda.max_memory_allocated(),
        peak_reserved=torch.cuda.max_memory_reserved(),
        events=sum(len(t) for t in snap["device_traces"]),
        segments=len(snap["segments"]),
        pickle_bytes=len(raw),
        gz_bytes=os.path.getsize(f"{out}/{name}.pickle.gz"),
    )
    print(name, facts[name], flush=True)

def rng(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))

W = {}
def workload(fn):
    W[fn.__name__] = fn
    return fn

@workload
def resnet50_infer_varbatch():
    # ResNet-50 inference, varying batch.
    m = torchvision.models.resnet50(weights=None).to(dev).eval()
    def run():
        with torch.no_grad():
            for b in [1, 8, 32, 4, 16, 24, 2, 32, 12]:
                x = torch.randn(b, 3, 224, 224, device=dev)
                y = m(x); del x, y
    record("resnet50_infer_varbatch", run, 40000)

@workload
def bert_train_varseq():
    # Transformer (BERT-base config, 6 layers) training, varying sequence length.
    from transformers import BertConfig, BertForMaskedLM
    cfg = BertConfig(num_hidden_layers=6)
    bert = BertForMaskedLM(cfg).to(dev).train()
    opt = torch.optim.AdamW(bert.parameters(), lr=1e-4)
    def run():
        for s in [64, 128, 96, 256, 32, 192, 128, 160]:
            ids = torch.randint(0, cfg.vocab_size, (8, s), device=dev)
            loss = bert(input_ids=ids, labels=ids).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            del ids, loss
    record("bert_train_varseq", run)

@workload
def fcn_train_largeact():
    # Large activations: a segmentation net (FCN-ResNet50) at high resolution, training steps.
    seg = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=8).to(dev).train()
    opt = torch.optim.SGD(seg.parameters(), lr=0.01)
    def run():
        for b, hw in [(2, 512), (4, 384), (2, 640), (1, 768)]:
            x = torch.randn(b, 3, hw, hw, device=dev)
            t = torch.randint(0, 8, (b, hw, hw), device=dev)
            loss = torch.nn.functional.cross_entropy(seg(x)["out"], t)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            del x, t, loss
    record("fcn_train_largeact", run)

@workload
def transformer_infer_varseq():
    # Encoder inference, the sequence length changing every step (a serving loop).
    from transformers import BertConfig, BertModel
    m = BertModel(BertConfig()).to(dev).eval(); r = rng(1)
    def run():
        with torch.no_grad():
            for _ in range(24):
                ids = torch.randint(0, 30000, (16, r(32, 512)), device=dev)
                y = m(input_ids=ids).last_hidden_state; del ids, y
    record("transformer_infer_varseq", run)

@workload
def gpt2_generate_kvcache():
    # Decoding with a growing KV cache, prompts of varying length.
    from transformers import GPT2Config, GPT2LMHeadModel
    m = GPT2LMHeadModel(GPT2Config(n_layer=12)).to(dev).eval(); r = rng(2)
    def run():
        with torch.no_grad():
            for b, p in [(4, 32), (8, 96), (2, 200), (6, 64)]:
                ids = torch.randint(0, 50000, (b, p), device=dev)
                y = m.generate(ids, max_new_tokens=40, min_new_tokens=40, do_sample=False,
                               pad_token_id=0, attention_mask=torch.ones_like(ids)); del ids, y
    record("gpt2_generate_kvcache", run)

@workload
def maskrcnn_infer_varsize():
    # Detection and instance segmentation, images of varying size.
    m = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).to(dev).eval()
    r = rng(3)
    def run():
        with torch.no_grad():
            for _ in range(8):
                imgs = [torch.rand(3, r(300, 900), r(300, 900), device=dev) for _ in range(r(1, 3))]
                y = m(imgs); del imgs, y
    record("maskrcnn_infer_varsize", run)

@workload
def resnet18_amp_train_varbatch():
    # Mixed-precision training at varying batch.
    m = torchvision.models.resnet18(weights=None).to(dev).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9); sc = torch.amp.GradScaler()
    def run():
        for b in [32, 64, 16, 128, 48, 96, 64]:
            x = torch.randn(b, 3, 224, 224, device=dev); t = torch.randint(0, 1000, (b,), device=dev)
            with torch.autocast("cuda", dtype=torch.float16):
                loss = torch.nn.functional.cross_entropy(m(x), t)
            sc.scale(loss).backward(); sc.step(opt); sc.update(); opt.zero_grad(set_to_none=True)
            del x, t, loss
    record("resnet18_amp_train_varbatch", run)

@workload
def vit_b16_infer_varbatch():
    m = torchvision.models.vit_b_16(weights=None).to(dev).eval()
    def run():
        with torch.no_grad():
            for b in [1, 16, 64, 8, 32, 4, 48]:
                x = torch.randn(b, 3, 224, 224, device=dev); y = m(x); del x, y
    record("vit_b16_infer_varbatch", run)

@workload
def gpt2_train_varbatch_seq():
    from transformers import GPT2Config, GPT2LMHeadModel
    m = GPT2LMHeadModel(GPT2Config(n_layer=6)).to(dev).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    def run():
        for b, s in [(8, 128), (4, 512), (16, 64), (8, 256), (2, 1024), (12, 192)]:
            ids = torch.randint(0, 50000, (b, s), device=dev)
            loss = m(input_ids=ids, labels=ids).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); del ids, loss
    record("gpt2_train_varbatch_seq", run)

@workload
def resnet50_train_near_limit():
    # Training with the process capped just above the loop's peak: the allocator must free
    # cached blocks and retry to stay under the cap.
    m = torchvision.models.resnet50(weights=None).to(dev).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    def step(b):
        x = torch.randn(b, 3, 224, 224, device=dev); t = torch.randint(0, 1000, (b,), device=dev)
        loss = torch.nn.functional.cross_entropy(m(x), t)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); del x, t, loss
    torch.cuda.reset_peak_memory_stats()
    for b in [96, 64]: step(b)
    peak = torch.cuda.max_memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, peak * 1.08 / total))
    def run():
        for b in [96, 80, 64, 96, 72, 88]: step(b)
    try:
        record("resnet50_train_near_limit", run)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)

@workload
def deeplab_infer_varsize():
    # Segmentation inference at varying resolution.
    m = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21).to(dev).eval()
    r = rng(4)
    def run():
        with torch.no_grad():
            for _ in range(8):
                x = torch.randn(r(1, 4), 3, r(256, 768), r(256, 768), device=dev); y = m(x); del x, y
    record("deeplab_infer_varsize", run)

@workload
def lstm_lm_train_varseq():
    # A recurrent language model, truncated-BPTT length varying.
    class LM(torch.nn.Module):
        def __init__(s):
            super().__init__(); s.e = torch.nn.Embedding(32000, 512)
            s.l = torch.nn.LSTM(512, 1024, num_layers=2, batch_first=True); s.o = torch.nn.Linear(1024, 32000)
        def forward(s, x): return s.o(s.l(s.e(x))[0])
    m = LM().to(dev).train(); opt = torch.optim.Adam(m.parameters(), lr=1e-3); r = rng(6)
    def run():
        for _ in range(8):
            x = torch.randint(0, 32000, (32, r(16, 160)), device=dev)
            loss = torch.nn.functional.cross_entropy(m(x).flatten(0, 1), x.flatten())
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); del x, loss
    record("lstm_lm_train_varseq", run)

@workload
def mobilenet_train_varbatch():
    m = torchvision.models.mobilenet_v3_large(weights=None).to(dev).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    def run():
        for b in [64, 128, 32, 96, 160, 48]:
            x = torch.randn(b, 3, 224, 224, device=dev); t = torch.randint(0, 1000, (b,), device=dev)
            loss = torch.nn.functional.cross_entropy(m(x), t)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); del x, t, loss
    record("mobilenet_train_varbatch", run)

@workload
def llama_infer_dynbatch():
    # A decoder-only model served with dynamic batching: batch and length change each request.
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=4, vocab_size=32000)
    m = LlamaForCausalLM(cfg).to(dev).eval(); r = rng(7)
    def run():
        with torch.no_grad():
            for _ in range(16):
                ids = torch.randint(0, 32000, (r(1, 16), r(16, 768)), device=dev)
                y = m(input_ids=ids).logits; del ids, y
    record("llama_infer_dynbatch", run)

@workload
def unet_train_varres():
    # A small encoder-decoder conv net (U-Net shape) trained at varying resolution.
    C = torch.nn.Conv2d
    def blk(i, o): return torch.nn.Sequential(C(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU(), C(o, o, 3, padding=1), torch.nn.ReLU())
    class U(torch.nn.Module):
        def __init__(s):
            super().__init__(); s.d = torch.nn.ModuleList([blk(3, 32), blk(32, 64), blk(64, 128), blk(128, 256)])
            s.u = torch.nn.ModuleList([blk(384, 128), blk(192, 64), blk(96, 32)]); s.o = C(32, 2, 1)
        def forward(s, x):
            skips = []
            for i, b in enumerate(s.d):
                x = b(x)
                if i < 3: skips.append(x); x = torch.nn.functional.max_pool2d(x, 2)
            for b in s.u:
                x = torch.nn.functional.interpolate(x, scale_factor=2.0)
                x = b(torch.cat([x, skips.pop()], 1))
            return s.o(x)
    m = U().to(dev).train(); opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    def run():
        for b, hw in [(8, 256), (4, 384), (16, 192), (2, 512), (8, 320)]:
            x = torch.randn(b, 3, hw, hw, device=dev); t = torch.randint(0, 2, (b, hw, hw), device=dev)
            loss = torch.nn.functional.cross_entropy(m(x), t)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); del x, t, loss
    record("unet_train_varres", run)

names = sys.argv[1:] or list(W)
for n in names:
    torch.manual_seed(0)
    try:
        W[n]()
    except Exception:
        traceback.print_exc(); print("FAILED", n, flush=True)
    torch.cuda.empty_cache()
path = f"{out}/facts.json"
known = json.load(open(path)) if os.path.exists(path) else dict(torch=torch.__version__, gpu="per workload", workloads={})
for name, f in facts.items():
    known["workloads"][name] = dict(f, gpu=torch.cuda.get_device_name())
json.dump(known, open(path, "w"), indent=2)
