#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js and writes deterministic artifacts that the Python
// package msq_contracts ships. Offline: imports resolve only from node_modules/@openzeppelin/contracts.
//
//   node contracts/build.mjs            # writes contracts/msq_contracts/artifacts/
//   node contracts/build.mjs --out DIR  # writes DIR/ (the build test compares it with the committed files)

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const contractsDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(contractsDir, "..");
const require = createRequire(import.meta.url);
const solc = require("solc");
const ozRoot = join(repoRoot, "node_modules", "@openzeppelin", "contracts");
const OZ_PREFIX = "@openzeppelin/contracts/";

// Artifacts are committed, so every input that changes bytecode is pinned here rather than left to
// solc defaults that move between releases. cancun rather than prague/osaka: the samples must deploy
// on every chain a pool may target, and cancun is the newest fork they all run.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  viaIR: false,
  metadata: { bytecodeHash: "ipfs" },
};
const CONTRACTS = ["SampleToken", "SampleNFT"];

function parseArgs(argv) {
  let out = join(contractsDir, "msq_contracts", "artifacts");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) {
      out = resolve(argv[++i]);
    } else {
      throw new Error(`unknown argument ${argv[i]}; usage: node contracts/build.mjs [--out DIR]`);
    }
  }
  return { out };
}

function packageVersion(dir) {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
}

function findImports(path) {
  // Only OpenZeppelin imports are legal; anything else (or a path escaping the package) is a mistake
  // in a source file and must fail the build instead of silently reading some other file.
  if (!path.startsWith(OZ_PREFIX)) {
    return { error: `import ${path} is outside ${OZ_PREFIX}` };
  }
  const file = resolve(ozRoot, path.slice(OZ_PREFIX.length));
  if (!file.startsWith(ozRoot + sep) || !existsSync(file)) {
    return { error: `import ${path} not found under ${ozRoot}` };
  }
  return { contents: readFileSync(file, "utf8") };
}

function solcVersionFromMetadata(bytecode) {
  // solc appends CBOR metadata whose "solc" entry holds the compiler version as three bytes
  // (a2 ... 64 "solc" 43 MM mm pp, then the 2-byte CBOR length): the shipped JSON does not say which
  // compiler OpenZeppelin used, the bytecode does.
  const match = /64736f6c6343([0-9a-f]{6})[0-9a-f]{4}$/.exec(bytecode);
  if (!match) {
    return null;
  }
  const [major, minor, patch] = match[1].match(/../g).map((b) => parseInt(b, 16));
  return `${major}.${minor}.${patch}`;
}

function writeArtifact(outDir, artifact) {
  // JSON.stringify keeps insertion order, so the object literals below fix the key order.
  writeFileSync(join(outDir, `${artifact.contractName}.json`), JSON.stringify(artifact, null, 2) + "\n");
}

function compile() {
  const srcDir = join(contractsDir, "src");
  const sources = {};
  for (const file of readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
    // Source unit names are relative to contracts/, so the metadata hash does not depend on where
    // the repository is checked out.
    const unit = relative(contractsDir, join(srcDir, file)).split(sep).join("/");
    sources[unit] = { content: readFileSync(join(srcDir, file), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: { ...SETTINGS, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const started = performance.now();
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const seconds = (performance.now() - started) / 1000;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  for (const e of output.errors ?? []) {
    process.stderr.write(e.formattedMessage ?? e.message);
  }
  if (errors.length > 0) {
    throw new Error(`solc reported ${errors.length} error(s), see above`);
  }
  return { output, seconds };
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  mkdirSync(out, { recursive: true });
  const ozVersion = packageVersion(ozRoot);
  const compiler = {
    solc: solc.version(),
    settings: SETTINGS,
    openzeppelinContracts: ozVersion,
  };

  const { output, seconds } = compile();
  for (const name of CONTRACTS) {
    const contract = output.contracts[`src/${name}.sol`]?.[name];
    if (!contract) {
      throw new Error(`solc produced no ${name} in src/${name}.sol`);
    }
    writeArtifact(out, {
      contractName: name,
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      compiler,
    });
  }

  // The forwarder is OpenZeppelin's own audited build, copied rather than recompiled so its bytecode is
  // exactly the one OpenZeppelin publishes.
  const shipped = JSON.parse(readFileSync(join(ozRoot, "build", "contracts", "ERC2771Forwarder.json"), "utf8"));
  writeArtifact(out, {
    contractName: "ERC2771Forwarder",
    abi: shipped.abi,
    bytecode: shipped.bytecode,
    compiler: {
      solc: solcVersionFromMetadata(shipped.bytecode),
      prebuilt: `@openzeppelin/contracts@${ozVersion}/build/contracts/ERC2771Forwarder.json`,
      sourceName: shipped.sourceName,
    },
  });

  process.stdout.write(
    `compiled ${CONTRACTS.join(", ")} with solc ${solc.version()} in ${seconds.toFixed(2)} s; ` +
      `artifacts in ${out}\n`,
  );
}

try {
  main();
} catch (err) {
  process.stderr.write(`build.mjs: ${err.message}\n`);
  process.exit(1);
}
