"""The options of ``algnet deblur``, grouped: inputs and output, model and run, videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

InputsArgument = Annotated[
    list[str], typer.Argument(help="Image or video files, folders or globs.", metavar="INPUT...")
]
OutputArgOption = Annotated[
    Optional[str],
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Output folder (or a file name for a single input; a trailing / always means a folder).",
    ),
]
ModelOption = Annotated[
    str,
    typer.Option(metavar="MODEL", help="A registry name, hf://owner/repo[@rev]/file, or a .safetensors/.pth path."),
]
DeviceOption = Annotated[str, typer.Option(metavar="<auto|cpu|cuda|cuda:N>", help="Where the model runs.")]
PrecisionOption = Annotated[
    Literal["auto", "fp32", "bf16", "fp16"], typer.Option(help="auto: bf16 on capable GPUs, else fp32.")
]
TileOption = Annotated[
    str,
    typer.Option(
        metavar="<auto|0|PIXELS>",
        help="auto (whole image when it fits the memory budget), 0 (whole) or a tile side in pixels.",
    ),
]
TileOverlapOption = Annotated[int, typer.Option(metavar="PIXELS", help="Overlap between tiles, in pixels.", min=0)]
MaxMemoryOption = Annotated[
    Optional[float],
    typer.Option(
        metavar="GIB",
        help="Memory budget per image in GiB for --tile auto (default: 3 on CPU, leaving room for image buffers under 4, and 80% of free GPU memory).",
    ),
]
MaxMegapixelsOption = Annotated[
    Optional[float],
    typer.Option(
        metavar="MP",
        help="Refuse images whose header claims more megapixels than this, before decoding them (default: half the memory available; 0: no limit).",
        min=0,
    ),
]
TlcOption = Annotated[
    bool, typer.Option("--tlc/--no-tlc", help="Test-time local converter, as in the official evaluation.")
]
ScanOption = Annotated[
    Literal["auto", "fused", "chunked", "triton", "mamba", "reference"],
    typer.Option(envvar="ALGNET_SCAN", help="Selective-scan backend (fused: CPU; triton, mamba: CUDA)."),
]
RecursiveOption = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into sub-folders, mirroring the tree.")
]
FmtOption = Annotated[
    Literal["keep", "png", "jpg", "tif", "webp", "bmp"],
    typer.Option("--format", case_sensitive=False, help="Output image format (keep: the input's)."),
]
QualityOption = Annotated[int, typer.Option(metavar="1-100", help="JPEG/WebP quality.", min=1, max=100)]
SuffixOption = Annotated[str, typer.Option(metavar="TEXT", help="Added to each output file's stem, e.g. _sharp.")]
SkipExistingOption = Annotated[
    bool,
    typer.Option("--skip-existing/--overwrite", help="Keep outputs that already exist (resume), or replace them."),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan (files, sizes, whole or tiles, memory) and stop.")
]
JsonOutOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
GtOption = Annotated[
    Optional[Path],
    typer.Option(
        "--gt",
        metavar="DIR",
        help="Ground-truth folder: score each output and its input against it (PSNR/SSIM, basicsr).",
        exists=True,
        file_okay=False,
    ),
]
CodecOption = Annotated[
    str,
    typer.Option(
        metavar="CODEC",
        help="Video encoder: auto (H.264, or the container's own where it cannot hold H.264: VP9 in WebM), "
        "h264, h265, vp9, av1, ffv1 (lossless) or any FFmpeg encoder name.",
    ),
]
CrfOption = Annotated[
    int, typer.Option(metavar="0-63", help="Video quality for h264/h265/vp9/av1 (lower is better).", min=0, max=63)
]
PixFmtOption = Annotated[
    Optional[str],
    typer.Option(
        metavar="PIX_FMT",
        help="Video pixel format (default: the source's when the encoder takes it; yuv444p for odd sizes).",
    ),
]
VideoFormatOption = Annotated[
    Optional[Literal["mp4", "mkv", "mov", "webm", "avi"]],
    typer.Option(case_sensitive=False, help="Container of video outputs (default: the input's)."),
]
FramesOutOption = Annotated[
    Optional[Path],
    typer.Option(
        metavar="DIR",
        help="Write each video's deblurred frames as PNG (16-bit for sources above 8 bit) under DIR/NAME/.",
    ),
]
ToVideoOption = Annotated[
    Optional[Path],
    typer.Option(metavar="VIDEO", help="Encode the input images, in natural order, as frames of this video."),
]
FpsOption = Annotated[
    Optional[float], typer.Option(metavar="FPS", help="Frame rate for --to-video (default 25).", min=0.001)
]
ClusterOption = Annotated[
    Optional[str],
    typer.Option(
        help="Run on a Ray cluster: local (one started on this machine for the run), auto (the cluster this "
        "machine belongs to) or a Ray address (HOST:PORT, ray://HOST:PORT). Needs algnet-cli[ray].",
        metavar="ADDRESS",
    ),
]
ClusterWorkersOption = Annotated[
    Optional[int],
    typer.Option(
        "--cluster-workers",
        metavar="N",
        help="With --cluster: how many Ray workers run the model (default: one per GPU, else one per node).",
        min=1,
    ),
]
StrengthOption = Annotated[
    float,
    typer.Option(
        metavar="0-1",
        help="How much of the model's correction to apply, 0 to 1: output = input + S x (restored - input), per "
        "pixel. Lower it for softer results where the model over-sharpens or rings; 0 gives the input back.",
        min=0.0,
        max=1.0,
    ),
]
SkipSharpOption = Annotated[
    bool,
    typer.Option(
        "--skip-sharp",
        help="Run the model only on images that triage (algnet triage) judges blurred or unsure; copy the "
        "sharp ones to the output byte for byte. The run record says which was which, with the score.",
    ),
]
PreviewOption = Annotated[
    Optional[Path],
    typer.Option(
        metavar="SHEET.png",
        help="Write a preview sheet (PNG) instead of running the batch: for a few inputs, the crop with the "
        "most detail before and after, labelled with the blur scores; nothing else is written.",
    ),
]
PreviewCountOption = Annotated[
    int, typer.Option(metavar="N", help="How many inputs the preview sheet shows.", min=1, max=64)
]
PreviewPickOption = Annotated[
    Literal["spread", "blurriest"],
    typer.Option(help="Which inputs the preview shows: spread (evenly over the inputs) or blurriest (by triage)."),
]
