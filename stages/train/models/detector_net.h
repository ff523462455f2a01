#pragma once
// The sub-pixel net's trunk with a detection head in place of its map (DECODE's output, Speiser
// et al. 2021): per camera pixel, the log-odds that an emitter lies there, its position within
// one pixel of the pixel's centre and the spread of that position, trained on DECODE's loss
// (detection_loss.h) against the training items' emitters. forward() paints the detections as the
// emitter map the other nets predict (each pixel's probability a small Gaussian at its position,
// in emitters per sub-pixel), so inference, the threshold choice and the reconstructions read it
// as they read any net's map. The blurred-MSE nets spread one emitter over neighbouring sub-pixels
// and split crowded peaks by their mass; here each emitter is asked for as a point and a count.
#include "stages/train/models/detection_loss.h"
#include "stages/train/models/subpixel_net.h"

namespace dsir {

class DetectorNetImpl : public SubpixelNetImpl {
 public:
  // The Gaussian each detection is painted as (sub-pixels): narrow enough that emitters 50 nm
  // (4 sub-pixels) apart stay two peaks through the localizer's 1-sub-pixel smoothing.
  static constexpr double kPaintSigma = 1.0;
  DetectorNetImpl();
  Detections detect(torch::Tensor x);               // upscaled (N, 1, H, W) -> camera pixels
  torch::Tensor forward(torch::Tensor x) override;  // paint_detections(detect(x))
  bool has_own_loss() const override { return true; }
  torch::Tensor own_loss(const torch::Tensor& inputs, const torch::Tensor& labels) override;
};
TORCH_MODULE(DetectorNet);

// The detections as a map of `factor` x `factor` sub-pixels per camera pixel, (N, 1, h f, w f):
// each pixel's probability spread as a unit-mass Gaussian of `sigma` sub-pixels centred on its
// position and integrated over each sub-pixel (positions stay within a pixel of their own pixel's
// centre; the mass beyond the frame's edge is lost). Without autograd on a CPU (inference) each
// pixel adds only the sub-pixels its Gaussian reaches, the same map to float rounding.
torch::Tensor paint_detections(const Detections& detections, int factor, double sigma);

}  // namespace dsir
