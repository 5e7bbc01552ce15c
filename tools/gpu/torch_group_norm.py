"""PyTorch CUDA F.group_norm on tools/gpu/gpu_bench.cu's shapes: CUDA events, warm-up,
median of 50, rotating buffers larger than 2x L2. Same columns as the bench."""
import torch
import torch.nn.functional as F

SHAPES = [("sd_unet_320x64x64", (2, 320, 64, 64), 32), ("sd_unet_640x32x32", (2, 640, 32, 32), 32),
          ("sd_unet_1280x16x16", (2, 1280, 16, 16), 32), ("sd_unet_2560x8x8", (2, 2560, 8, 8), 32),
          ("sd_vae_128x512x512", (1, 128, 512, 512), 32), ("sd_vae_512x64x64", (1, 512, 64, 64), 32),
          ("video_vae_5d", (1, 128, 20, 64, 64), 32), ("resnet_gn", (8, 256, 56, 56), 32),
          ("tiny", (1, 32, 8, 8), 4)]
l2 = torch.cuda.get_device_properties(0).L2_cache_size
for name, dims, g in SHAPES:
    for dtype in (torch.float32, torch.float16):
        for cl in (False, True):
            numel = torch.Size(dims).numel()
            nbytes = numel * (2 if dtype == torch.float16 else 4)
            rot = max(1, 2 * l2 // nbytes + 1)
            fmt = torch.channels_last_3d if len(dims) == 5 else torch.channels_last
            xs = [torch.randn(dims, device="cuda", dtype=dtype) for _ in range(rot)]
            if cl:
                xs = [x.to(memory_format=fmt) for x in xs]
            for i in range(5):
                F.group_norm(xs[i % rot], g)
            times = []
            for i in range(50):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record(); F.group_norm(xs[i % rot], g); b.record(); b.synchronize()
                times.append(a.elapsed_time(b))
            ms = sorted(times)[len(times) // 2]
            print(f"{name:22s} {'f16' if dtype == torch.float16 else 'f32':5s} "
                  f"{'nhwc' if cl else 'nchw':7s} {ms * 1e3:10.1f} {2 * nbytes / (ms * 1e6):9.0f}  torch")
