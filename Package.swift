// swift-tools-version:6.0
// BitNet: train 1-bit Transformer language models on the CPU, and run them.
import PackageDescription

// Hot loops need the machine's vector instructions: without them Swift emits
// baseline x86-64 (no AVX, no popcnt) and numeric loops run several times slower.
let nativeSwift: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"])]

let package = Package(
    name: "bitnet",
    products: [
        .library(name: "BitNet", targets: ["BitNet"]),
        .library(name: "BitNetRuntime", targets: ["BitNetRuntime"]),
        .executable(name: "bitnet-train", targets: ["bitnet-train"]),
        .executable(name: "bitnet-run", targets: ["bitnet-run"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Debian's libopenblas-dev: cblas_sgemm for every FP32 matrix product.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas"),
        // Debian's libopenmpi-dev: the collectives of data-parallel training under mpirun.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c"),
        // Debian's libsentencepiece-dev behind a small extern "C" API.
        .target(
            name: "CSentencePiece",
            path: "Sources/CSentencePiece",
            cxxSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]
        ),
        // The packed model format, defined once: used by the trainer's writer and the
        // runtime's reader. No dependencies, so the runtime shares no training code.
        .target(name: "BitNetFormat", path: "Sources/BitNetFormat", swiftSettings: nativeSwift),
        // Sampling and the generation loop, defined once for both programs (same seed,
        // same text). No dependencies.
        .target(name: "BitNetSampling", path: "Sources/BitNetSampling", swiftSettings: nativeSwift),
        // exp, sigmoid, tanh and the sixteen-lane reductions, defined once for both programs
        // (their logits match bit for bit). No dependencies.
        .target(name: "BitNetMath", path: "Sources/BitNetMath", swiftSettings: nativeSwift),
        .target(
            name: "BitNet",
            dependencies: ["BitNetFormat", "BitNetSampling", "BitNetMath", "COpenBLAS", "CSentencePiece", "CBitKernels", "CMPI"],
            path: "Sources/BitNet",
            swiftSettings: nativeSwift
        ),
        // Kernels in C (the runtime's, and the trainer's AVX-512 BF16 conversion): vpshufb
        // look-ups, F16C and BF16 instructions are out of Swift's reach.
        // AVX2 paths are compiled per function and chosen at run time; -O3 for the scalar ones.
        .target(
            name: "CBitKernels",
            path: "Sources/CBitKernels",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        // The lean runtime: reads MODEL.bitnet; no BLAS, no SentencePiece, no training code.
        .target(
            name: "BitNetRuntime",
            dependencies: ["BitNetFormat", "BitNetSampling", "BitNetMath", "CBitKernels"],
            path: "Sources/BitNetRuntime",
            swiftSettings: nativeSwift
        ),
        // What the two command lines share: the sampling flags, streamed output, stderr.
        .target(
            name: "BitNetCLI",
            dependencies: ["BitNetSampling", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/BitNetCLI",
            swiftSettings: nativeSwift
        ),
        .executableTarget(
            name: "bitnet-train",
            dependencies: ["BitNet", "BitNetCLI", "BitNetSampling", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/bitnet-train",
            swiftSettings: nativeSwift
        ),
        .executableTarget(
            name: "bitnet-run",
            dependencies: ["BitNetRuntime", "BitNetCLI", "BitNetSampling", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/bitnet-run",
            swiftSettings: nativeSwift
        ),
        .testTarget(
            name: "BitNetTests",
            dependencies: ["BitNet", "BitNetRuntime", "BitNetFormat", "BitNetSampling", "BitNetMath"],
            path: "Tests/BitNetTests",
            swiftSettings: nativeSwift
        ),
    ],
    cxxLanguageStandard: .cxx17
)
