"""The GPU peer: PyTorch eager and cuDNN on the GPU machine, and a ResNeXt-50 for our GPU tests there.

Usage (on the GPU machine, whose python3 has torch and torchvision): python3 bench/torch_gpu.py OUT_DIR

1. Exports torchvision's resnext50_32x4d with random weights (BatchNorm statistics and affine
   parameters randomised so BN is far from identity, kept as its own node: TorchScript exporter,
   opset 17, input `input` with a dynamic batch, output `logits`, as in ../shared/models/README.md)
   to OUT_DIR/resnext50_32x4d_bn.onnx, with a batch of 2 random images and PyTorch's fp32 CPU logits
   for them (.input.npy, .output.npy). The shared export is too large to send to the GPU machine
   beside the test binaries; with RESNEXT_MODELS=OUT_DIR, `gpu_models_match_pytorch` and
   `benches/cuda.rs` use this one.
2. Times PyTorch eager on the GPU (fp32, TF32 off, cudnn.benchmark) at batch 1/8/64/256: median ms
   of 50 runs (10 at batch 64 and 256) and images/s.
3. Times each grouped 3x3 conv module alone (cuDNN) at batch 1 and 64 with CUDA events: median µs
   of 20 runs, beside the per-layer times `benches/cuda.rs` prints for ours.
"""
import sys
import time

import numpy as np
import torch
import torchvision


def export(out: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnext50_32x4d()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(-0.3, 0.3)
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = model(x)
    stem = f"{out}/resnext50_32x4d_bn"
    np.save(f"{stem}.input.npy", x.numpy())
    np.save(f"{stem}.output.npy", y.numpy())
    torch.onnx.export(
        model, x, f"{stem}.onnx", opset_version=17, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, dynamo=False)
    print(f"exported {stem}.onnx", flush=True)
    return model


def median_ms(f, runs: int) -> float:
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[runs // 2]


def main() -> None:
    model = export(sys.argv[1])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    gpu = model.cuda()
    print("| batch | PyTorch eager median ms | images/s |")
    with torch.no_grad():
        for batch in [1, 8, 64, 256]:
            x = torch.randn(batch, 3, 224, 224, device="cuda")
            ms = median_ms(lambda: gpu(x), 50 if batch < 64 else 10)
            print(f"| {batch} | {ms:.3f} | {batch / ms * 1e3:.0f} |", flush=True)
        # The input shape of every grouped conv, at each batch size.
        shapes = {}

        def record(name):
            def hook(module, inputs, output):
                shapes.setdefault((name, inputs[0].shape[0]), inputs[0].shape)  # None: output kept
            return hook

        convs = {n: m for n, m in gpu.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
        hooks = [m.register_forward_hook(record(n)) for n, m in convs.items()]
        for batch in [1, 64]:
            gpu(torch.randn(batch, 3, 224, 224, device="cuda"))
        for h in hooks:
            h.remove()
        for batch in [1, 64]:
            print(f"\ncuDNN grouped convs (conv only), batch {batch}: | module (input shape) | µs |")
            for (name, b), shape in shapes.items():
                if b != batch:
                    continue
                x = torch.randn(*shape, device="cuda")
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                for _ in range(5):
                    convs[name](x)
                times = []
                for _ in range(20):
                    start.record()
                    convs[name](x)
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end) * 1e3)
                times.sort()
                print(f"| {name} {tuple(shape)} | {times[10]:.1f} |")


if __name__ == "__main__":
    main()
