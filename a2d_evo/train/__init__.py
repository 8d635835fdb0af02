"""Stage 2 of the pipeline: training, from a teacher to a supernet whose subnets all play.

The stage entry points, in pipeline order (each is one ``a2d-evo`` command):

- :func:`train_teacher` (:mod:`.teacher`): the teacher arch trained with plain PPO, or
  :func:`import_teacher` (:mod:`.import_teacher`): one trained by SB3 or CleanRL, read and
  mapped onto our agent by :mod:`.foreign_checkpoints`. Either way ``RUN_DIR/teacher/agent/``
  is written (:mod:`.teacher_folder`).
- :func:`train_supernet` (:mod:`.supernet_stage`): PPO + A2D distillation from the teacher,
  sandwich rule; ``RUN_DIR/supernet/weights.pt``.
- :func:`finetune_agent` (:mod:`.finetune`): a few more distilled PPO steps for one agent
  folder picked from the front.
- :func:`train_baselines` (:mod:`.baselines`): the hand-designed family a front must beat.

Under them, one PPO loop serves every stage:

- :mod:`.ppo`: the algorithm's pieces (rollout buffer, collector, GAE, clipped loss);
  :mod:`.distill`: the A2D terms, their schedule and the value units;
  :mod:`.sampling`: the sandwich rule and how its random subnets are drawn.
- :mod:`.learners`: what a stage plugs into the loop (who acts, the minibatch loss).
- :mod:`.loop`: ``run_ppo``, with :mod:`.streams` (seeded randomness, threads),
  :mod:`.checkpoint` (resumable state), :mod:`.interrupts` (SIGINT/SIGTERM) and
  :mod:`.reporting` (progress bar, TensorBoard).
"""

from a2d_evo.train.baselines import train_baselines
from a2d_evo.train.finetune import finetune_agent
from a2d_evo.train.import_teacher import import_teacher
from a2d_evo.train.supernet_stage import train_supernet
from a2d_evo.train.teacher import train_teacher

__all__ = ["finetune_agent", "import_teacher", "train_baselines", "train_supernet", "train_teacher"]
