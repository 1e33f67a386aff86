// The parameter shapes of a configuration: the model itself is built (on the CPU; it draws from
// the global generator, which golf-train reseeds before training), so every variant's tensors are planned exactly as golf-train creates them.
#include <ATen/ATen.h>

#include "model/model.h"
#include "pack/plan.h"

namespace golf::pack {

ShapeMap model_shapes(const Config& cfg) {
  const Model model(cfg, at::kCPU);
  ShapeMap shapes;
  for (const auto& name : model.names()) {
    const at::Tensor& p = model.param(name);
    shapes[name] = std::vector<int64_t>(p.sizes().begin(), p.sizes().end());
  }
  // golf-pack stores the SMAT gate means (calibration's "smat_gate_means", NUM_LAYERS) beside the weights.
  if (cfg.smat_use_g) shapes["smat_gate_means"] = {cfg.num_layers};
  return shapes;
}

}  // namespace golf::pack
