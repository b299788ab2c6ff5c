# Active-learning experiment: ROUNDS rounds x SEEDS x METHODS, each round an `alcli` shell pipeline.
#
#   make -f samples/experiment.mk -j2 DATA=samples/mnist5k.h5 NAME=mnist \
#        METHODS="random kcenter entropy" SEEDS="0 1 2 3 4" ROUNDS=5 INITIAL=100 BUDGET=100 TEST=1000
#
# Files per round: runs/<NAME>/<method>/seed<k>/round<r>/{labeled,ckpt,report}.h5, plus
# runs/<NAME>/curve.{csv,png}. Every alcli output is written to a temporary file and renamed, so make
# sees either a whole artifact or none: a rerun skips finished rounds, and Ctrl-C loses at most the
# rounds in flight. Seed k fixes the test split, the initial pool (shared by every method, so curves are
# paired) and the training seed; the test split (TEST rows, seed TEST_SEED) is the same for every run.
# `-j N` runs independent seeds and methods in parallel.

ALCLI    ?= alcli
DATA     ?= samples/mnist5k.h5
NAME     ?= $(basename $(notdir $(DATA)))
METHODS  ?= random kcenter
SEEDS    ?= 0 1
ROUNDS   ?= 2
INITIAL  ?= 100
BUDGET   ?= 100
TEST     ?= 1000
TEST_SEED ?= 12345
ARCH     ?= small
EPOCHS   ?= 15
TRAIN_ARGS  ?=
EMBED_ARGS  ?=
SELECT_ARGS ?=
OUT      ?= runs/$(NAME)

# one thread per job: run the parallelism through make -j, not through BLAS/OpenMP threads
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.DELETE_ON_ERROR:
.PRECIOUS: $(OUT)/seed%/init.h5 $(OUT)/seed%/init-ckpt.h5 $(OUT)/seed%/init-report.h5
.PHONY: all reports curve

rounds  := $(shell seq 0 $(ROUNDS))
reports := $(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(foreach r,$(rounds),$(OUT)/$(m)/seed$(s)/round$(r)/report.h5)))

all: curve
reports: $(reports)
curve: $(OUT)/curve.csv

$(OUT)/curve.csv: $(reports)
	$(ALCLI) curve $^ --csv $@ --plot $(OUT)/curve.png --title "$(NAME): $(ARCH), +$(BUDGET)/round, seeds $(SEEDS)"

# the test split, then per seed the initial pool and its model, shared by every method
$(OUT)/test.h5:
	@mkdir -p $(@D)
	$(ALCLI) -q split $(DATA) --size $(TEST) --seed $(TEST_SEED) -o $@

$(OUT)/seed%/init.h5: $(OUT)/test.h5
	@mkdir -p $(@D)
	$(ALCLI) -q split $(DATA) --size $(INITIAL) --exclude $< --seed $* -o $@

$(OUT)/seed%/init-ckpt.h5: $(OUT)/seed%/init.h5
	$(ALCLI) -q train $(DATA) --labeled $< --arch $(ARCH) --epochs $(EPOCHS) --seed $* $(TRAIN_ARGS) -o $@

$(OUT)/seed%/init-report.h5: $(OUT)/seed%/init-ckpt.h5
	$(ALCLI) -q evaluate $< $(DATA) --indices $(OUT)/test.h5 -o $@

# round<r> of method m, seed s (generated rules: make has one % per pattern)
define ROUND0
$(OUT)/$(1)/seed$(2)/round0/labeled.h5: $(OUT)/seed$(2)/init.h5
	@mkdir -p $$(@D)
	cp $$< $$@
$(OUT)/$(1)/seed$(2)/round0/ckpt.h5: $(OUT)/seed$(2)/init-ckpt.h5 $(OUT)/$(1)/seed$(2)/round0/labeled.h5
	cp $$< $$@
$(OUT)/$(1)/seed$(2)/round0/report.h5: $(OUT)/seed$(2)/init-report.h5 $(OUT)/$(1)/seed$(2)/round0/ckpt.h5
	cp $$< $$@
endef

define ROUND
$(OUT)/$(1)/seed$(2)/round$(3)/labeled.h5: $(OUT)/$(1)/seed$(2)/round$(4)/ckpt.h5 $(OUT)/$(1)/seed$(2)/round$(4)/labeled.h5
	@mkdir -p $$(@D)
	$(ALCLI) -q embed $(DATA) --checkpoint $$< --exclude $(OUT)/test.h5 --seed $(2) $(EMBED_ARGS) - \
	  | $(ALCLI) select - --labeled $$(word 2,$$^) --budget $(BUDGET) --method $(1) --seed $(2) \
	      --exclude $(OUT)/test.h5 --radius $(SELECT_ARGS) -o $$@ --json > $$(@D)/select.json
$(OUT)/$(1)/seed$(2)/round$(3)/ckpt.h5: $(OUT)/$(1)/seed$(2)/round$(3)/labeled.h5
	$(ALCLI) -q train $(DATA) --labeled $$< --arch $(ARCH) --epochs $(EPOCHS) --seed $(2) $(TRAIN_ARGS) -o $$@
$(OUT)/$(1)/seed$(2)/round$(3)/report.h5: $(OUT)/$(1)/seed$(2)/round$(3)/ckpt.h5
	$(ALCLI) -q evaluate $$< $(DATA) --indices $(OUT)/test.h5 -o $$@
endef

$(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(eval $(call ROUND0,$(m),$(s)))))
$(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(foreach r,$(wordlist 2,$(words $(rounds)),$(rounds)),\
  $(eval $(call ROUND,$(m),$(s),$(r),$(shell expr $(r) - 1))))))
