// What nn~'s backend (src/backend/backend.cpp, nn~ 1.6) does with a model, in a small C++ program built against
// another libtorch (the performers' nn~ bundles libtorch 2.5): load, discover, set attributes, perform.
//
//   nnload MODEL info
//       methods with their params, attributes with their type codes and current values
//   nnload MODEL run METHOD BUFFER IN OUT [K:ATTR=V1,V2 ...]
//       IN: float32, planar [in_dim][T]; runs METHOD once per BUFFER samples as Backend::perform does (inputs
//       read at the last sample of each ratio window, outputs repeated out_ratio times) under InferenceMode,
//       calling set_ATTR(V1, V2) (typed by ATTR_params) before buffer K; writes OUT float32 planar [out_dim][T].
//       The global generator is seeded with 0 first.
#include <ATen/Parallel.h>
#include <torch/script.h>
#include <torch/version.h>

#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

static std::vector<std::string> list(torch::jit::Module &m, const std::string &getter) {
  std::vector<std::string> out;
  auto values = m.get_method(getter)(std::vector<c10::IValue>{}).toList();
  for (size_t i = 0; i < values.size(); i++) out.push_back(values.get(i).toStringRef());
  return out;
}

static std::vector<int> params(torch::jit::Module &m, const std::string &name) {
  auto p = m.attr(name + "_params").toTensor();
  std::vector<int> out;
  for (int i = 0; i < p.size(0); i++) out.push_back(p[i].item<int>());
  return out;
}

static int set_attribute(torch::jit::Module &m, const std::string &name, const std::vector<std::string> &args) {
  auto types = params(m, name);
  if (types.size() != args.size()) throw std::runtime_error("wrong number of values for " + name);
  std::vector<c10::IValue> in;
  for (size_t j = 0; j < types.size(); j++) {
    const auto &a = args[j];
    if (types[j] == 0) in.push_back(!(a == "0" || a == "false"));
    else if (types[j] == 1) in.push_back(std::stoi(a));
    else if (types[j] == 2) in.push_back(std::stof(a));
    else in.push_back(a);
  }
  return m.get_method("set_" + name)(in).toInt();
}

static std::string show(const c10::IValue &v) {
  std::stringstream ss;
  ss << v;
  return ss.str();
}

int main(int argc, char **argv) {
  if (argc < 3) {
    std::cerr << "usage: nnload MODEL info | nnload MODEL run METHOD BUFFER IN OUT [K:ATTR=V1,V2 ...]\n";
    return 2;
  }
  at::set_num_threads(1);
  torch::jit::Module m;
  try {
    m = torch::jit::load(argv[1]);
  } catch (const std::exception &e) {
    std::cout << "load failed: " << std::string(e.what()).substr(0, 400) << "\n";
    return 1;
  }
  m.eval();
  std::cout << "libtorch " << TORCH_VERSION << " loaded " << argv[1] << "\n";
  for (const auto &meth : m.get_methods())
    if (meth.name() == "set_sample_rate") m.get_method("set_sample_rate")({(int)44100});
  std::string mode = argv[2];
  if (mode == "info") {
    for (const auto &name : list(m, "get_methods")) {
      std::cout << "method " << name;
      for (int v : params(m, name)) std::cout << " " << v;
      std::cout << "\n";
    }
    for (const auto &name : list(m, "get_attributes")) {
      std::cout << "attribute " << name << " types";
      for (int v : params(m, name)) std::cout << " " << v;
      std::cout << " value " << show(m.get_method("get_" + name)(std::vector<c10::IValue>{})) << "\n";
    }
    return 0;
  }
  if (mode != "run" || argc < 7) {
    std::cerr << "usage: nnload MODEL run METHOD BUFFER IN OUT [K:ATTR=V1,V2 ...]\n";
    return 2;
  }
  std::string method = argv[3];
  int buffer = std::stoi(argv[4]);
  auto p = params(m, method);
  int in_dim = p[0], in_ratio = p[1], out_dim = p[2], out_ratio = p[3];
  std::multimap<int, std::pair<std::string, std::vector<std::string>>> events;
  for (int a = 7; a < argc; a++) {
    std::string spec = argv[a];
    auto colon = spec.find(':'), eq = spec.find('=');
    std::vector<std::string> values;
    std::stringstream rest(spec.substr(eq + 1));
    std::string item;
    while (std::getline(rest, item, ',')) values.push_back(item);
    events.insert({std::stoi(spec.substr(0, colon)), {spec.substr(colon + 1, eq - colon - 1), values}});
  }
  std::ifstream fin(argv[5], std::ios::binary | std::ios::ate);
  size_t bytes = fin.tellg();
  fin.seekg(0);
  std::vector<float> input(bytes / sizeof(float));
  fin.read(reinterpret_cast<char *>(input.data()), bytes);
  long total = input.size() / in_dim, n = total / buffer;
  auto x_all = torch::from_blob(input.data(), {in_dim, total}).clone();
  std::vector<torch::Tensor> outs;
  torch::manual_seed(0);
  for (long k = 0; k < n; k++) {
    auto range = events.equal_range(k);
    for (auto it = range.first; it != range.second; ++it) {
      int rc = set_attribute(m, it->second.first, it->second.second);
      std::cout << "buffer " << k << " set_" << it->second.first << " -> " << rc << "\n";
    }
    c10::InferenceMode guard;
    auto x = x_all.narrow(1, k * buffer, buffer).reshape({1, in_dim, buffer});
    x = x.reshape({in_dim, 1, -1, in_ratio}).select(-1, -1).permute({1, 0, 2});
    auto y = m.get_method(method)({x}).toTensor();
    y = y.repeat_interleave(out_ratio).reshape({1, out_dim, -1});
    if (y.size(2) != buffer) {
      std::cout << "model output size is not consistent\n";
      return 1;
    }
    outs.push_back(y[0].contiguous());
  }
  auto y = torch::cat(outs, 1).contiguous();
  std::ofstream fout(argv[6], std::ios::binary);
  fout.write(reinterpret_cast<const char *>(y.data_ptr<float>()), y.numel() * sizeof(float));
  std::cout << "ran " << method << " on " << n << " buffers of " << buffer << ": out " << out_dim << " x "
            << y.size(1) << "\n";
  return 0;
}
