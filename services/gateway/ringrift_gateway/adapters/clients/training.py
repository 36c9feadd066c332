"""The gateway's client of TrainingCoordinator: training triggers and rating fits."""

from __future__ import annotations

import grpc

from ringrift.training.v1 import training_pb2, training_pb2_grpc
from ringrift_runtime.grpc.calls import call


class TrainingClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = training_pb2_grpc.TrainingCoordinatorServiceStub(channel)

    async def trigger_training(
        self, config_key: str, epoch: int, force: bool = False
    ) -> training_pb2.TriggerTrainingResponse:
        request = training_pb2.TriggerTrainingRequest(config_key=config_key, epoch=epoch, force=force)
        return await call(self._stub.TriggerTraining(request))

    async def rollback(
        self, config_key: str, to_model_id: str, reason: str, epoch: int
    ) -> training_pb2.RollbackModelResponse:
        request = training_pb2.RollbackModelRequest(
            config_key=config_key, to_model_id=to_model_id, reason=reason, epoch=epoch
        )
        return await call(self._stub.RollbackModel(request))

    async def fit_ratings(self, epoch: int) -> None:
        await call(self._stub.FitRatings(training_pb2.FitRatingsRequest(epoch=epoch)))
